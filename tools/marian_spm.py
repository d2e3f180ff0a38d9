#!/usr/bin/python3
"""A small Marian tokenizer in the Hub's layout (source.spm, target.spm, vocab.json,
tokenizer_config.json) and what the reference tokenizers make of it: the golden fixture of
test/tokenizers/sentencepiece.test.ts (moxing's SentencePiece unigram reader and MarianTokenizer).

Run from the repository root with Debian's python3-sentencepiece (0.1.97) and transformers' source at
v4.31 (as tools/hf_marian.py; the fork Llama2D/transformers at commit 07360b6c carries it):

    apt-get install python3-sentencepiece
    git -C /path/to/transformers archive 07360b6c src/transformers | tar x -C /tmp/hf
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 tools/marian_spm.py /tmp/hf/src

Trains two unigram models with SentencePiece's own trainer on the committed verse samples (English
for the source side, Spanish for the target side; nmt_nfkc normalisation, as Marian's are, so the
precompiled character map is exercised), and a joint vocab.json as Marian's conversion makes one
(</s> 0, <unk> 1, the pieces of both models, a language code, <pad> last). Writes
tools/fixtures/marian-spm/ with those files and expected.json:
  spm       for each model and text: sentencepiece's encode_as_pieces and encode_as_ids, and
            decode_ids of those ids
  marian    transformers' MarianTokenizer.from_pretrained (v4.31 code, stubs of tools/hf_marian.py): input_ids
            of sources, labels of targets (text_target), and decode(ids, skip_special_tokens=True)
The texts cover what the normaliser and the Viterbi search must get right: compatibility forms (ﬁ,
full-width letters, ², ½), runs and kinds of white space, accents in composed and decomposed form,
characters no piece covers (emoji, Chinese, Greek), a user's literal </s>, and a leading language code.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sentencepiece as spm  # noqa: E402
from hf_marian import import_transformers  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tools", "fixtures", "marian-spm")
FIX = os.path.join(ROOT, "test", "data", "fixtures")

TEXTS = [
    "In the beginning God created the heaven and the earth.",
    "And God said, Let there be light: and there was light.",
    "  Leading,   inner\tand trailing   white space  ",
    "The ﬁrst ｆｕｌｌ－ｗｉｄｔｈ word, x² and ½ cup.",
    "Café, café (decomposed), niño, ÑANDÚ, über.",
    "Emoji 🙂 and 中文 and Ελληνικά are not in the pieces.",
    "A literal </s> and <unk> in the text.",
    "",
    "a",
    "En el principio creó Dios los cielos y la tierra.",
    "Y dijo Dios: Sea la luz: y fué la luz.",
    "¿Qué? ¡Sí! «Comillas» y guiones — largos.",
]


def read(name):
    with open(os.path.join(FIX, name), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def train(prefix, lines, vocab_size):
    path = os.path.join(OUT, prefix + ".txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    spm.SentencePieceTrainer.train(
        input=path,
        model_prefix=os.path.join(OUT, prefix),
        model_type="unigram",
        vocab_size=vocab_size,
        character_coverage=1.0,
        normalization_rule_name="nmt_nfkc",
        hard_vocab_limit=False,
        bos_id=-1,  # Marian's have no <s>: </s> and <unk> only
        eos_id=0,
        unk_id=1,
        num_threads=1,
        seed_sentencepiece_size=100000,
        minloglevel=2,
    )
    os.remove(path)
    os.remove(os.path.join(OUT, prefix + ".vocab"))
    return os.path.join(OUT, prefix + ".model")


def main():
    transformers = import_transformers(sys.argv[1])
    os.makedirs(OUT, exist_ok=True)
    en = read("genesis.en") + read("ruth.en")
    es = read("genesis.es") + read("ruth.es")
    src_model = train("source", en, 240)
    tgt_model = train("target", es, 240)
    os.replace(src_model, os.path.join(OUT, "source.spm"))
    os.replace(tgt_model, os.path.join(OUT, "target.spm"))
    sp = {side: spm.SentencePieceProcessor(model_file=os.path.join(OUT, side + ".spm")) for side in ("source", "target")}

    # vocab.json as Marian's conversion writes it: </s>, <unk>, pieces, codes, <pad> last.
    vocab = {"</s>": 0, "<unk>": 1}
    for side in ("source", "target"):
        for i in range(sp[side].get_piece_size()):
            piece = sp[side].id_to_piece(i)
            if piece not in vocab and not sp[side].is_control(i) and not sp[side].is_unknown(i):
                vocab[piece] = len(vocab)
    vocab[">>es<<"] = len(vocab)
    vocab["<pad>"] = len(vocab)
    with open(os.path.join(OUT, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=1)
    with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
        json.dump({"source_lang": "en", "target_lang": "es", "unk_token": "<unk>", "eos_token": "</s>", "pad_token": "<pad>", "model_max_length": 512, "separate_vocabs": False, "tokenizer_class": "MarianTokenizer"}, f, indent=1)

    expected = {"spm": {}, "marian": []}
    for side in ("source", "target"):
        rows = []
        for t in TEXTS:
            ids = sp[side].encode_as_ids(t)
            rows.append({"text": t, "pieces": sp[side].encode_as_pieces(t), "ids": ids, "decoded": sp[side].decode_ids(ids)})
        expected["spm"][side] = rows

    # from_pretrained, as a Hub directory is loaded: it also makes </s>, <unk> and <pad> in the text
    # split out as their ids (the constructor alone does not).
    tok = transformers.MarianTokenizer.from_pretrained(OUT)
    texts = TEXTS + [">>es<< In the beginning God created the heaven."]
    for t in texts:
        enc = tok(t, text_target=t)
        expected["marian"].append(
            {
                "text": t,
                "input_ids": enc["input_ids"],
                "labels": enc["labels"],
                "decoded_labels": tok.decode(enc["labels"], skip_special_tokens=True),
                "decoded_source": tok.decode(enc["input_ids"], skip_special_tokens=True, use_source_tokenizer=True),
            }
        )
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
    print(f"wrote {OUT}: vocab {len(vocab)}, spm {sp['source'].get_piece_size()} / {sp['target'].get_piece_size()} pieces")


if __name__ == "__main__":
    main()

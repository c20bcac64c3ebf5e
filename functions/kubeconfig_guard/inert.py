"""Untrusted text made inert, per output dialect: the one place that does it.

Account names, display names, cluster names and ids, certificate times, API error
codes and messages come from the ACK API or an event: anyone able to name a RAM user or
a cluster writes them. Every output renders them through this module, so a name such as
``[Reset password](https://evil.example/login)``, ``<!channel>``, ``<at id=all></at>``,
a backtick, ``# heading`` or a U+202E can never become a link, a mention, a heading,
emphasis, a broken code span, an extra line or reversed text. Every dialect first
passes the value through the one redactor (``redaction.redact``), then through
``one_line``, then escapes it for the dialect (redaction first: escaping could split a
secret so that it no longer matches).

Characters neutralised everywhere (``UNSAFE``: Unicode categories Cc, Cf, Zl, Zp and
lone surrogates, i.e. C0/C1 controls, NEL U+0085, U+2028/U+2029, the bidi controls
U+061C, U+200E/F, U+202A-E, U+2066-9, zero-width characters U+200B-D, U+2060, U+FEFF,
tag characters, ...):

=================== =============================================================
output              how
=================== =============================================================
chat, digest, HTML  line breaks and tabs become a space, every other one U+FFFD
                    (a visible "something was here"), so a value stays on its line
                    and cannot reorder the text around it
JSON log lines      kept exact but escaped in the JSON text (``\\u2028``), so a line
                    is one physical line for any splitter and values round-trip
terminal log lines  shown escaped (``\\n``, ``\\u202e``, ``\\x1b``) for a person
=================== =============================================================

Per dialect (the untrusted value in running text; ``code`` spans noted):

``MARKDOWN`` (the digest: report.md, ``kcguard summary`` output). CommonMark escapes
    every ASCII punctuation character with a backslash, so that is used: ``\\ ` * [ ] <
    ~``, ``&`` before an entity, ``_`` unless between two letters/digits (an intraword
    ``_`` can neither open nor close emphasis, so ``dev_alice`` stays readable), a
    leading ``# > + - =`` or list number, and ``://`` / ``www.`` (no GFM autolink). In
    code spans nothing can be escaped: backticks become U+02CB ``ˋ``.
``DINGTALK``, ``WECOM``, ``FEISHU`` (lark_md). Their documentation describes no
    escape mechanism for these Markdown subsets (and an entity such as ``&lt;`` may be
    decoded before ``<at>`` is parsed), so a backslash could show and might not stop a
    link: markup characters are replaced by look-alikes instead, which work whatever
    the renderer does: ``[ ]`` -> ``［ ］``, ``< >``
    -> ``＜ ＞``, ``* ~ ` \\ & # @`` -> ``∗ ∼ ˋ ＼ ＆ ＃ ＠``, non-intraword ``_`` -> ``ˍ``,
    ``://`` -> ``꞉//`` and a dot between two letters/digits -> U+2024 ``․`` (no client
    can autolink ``evil.example`` or mention ``@all``). They look the same to a reader;
    the exact values are in the JSON report. Code spans get the same treatment
    (DingTalk has none; whether the others honour them is undocumented). Only the
    digest keeps exact values in its code spans (CommonMark has no mentions and does
    not autolink inside a code span).
``SLACK`` (mrkdwn, sections sent with ``verbatim: true`` so Slack does not autolink
    URLs or parse ``@channel``). Slack has no backslash escape; its documented escapes
    are ``&amp; &lt; &gt;`` (no ``<!channel>``, ``<@U123>``, ``<url|text>`` can form),
    and the formatting characters ``* _ ~ ` [ ] @ #``, ``://`` and domain dots get the
    look-alikes above, in code spans too (two layers: ``verbatim`` and no URL-like text).
HTML report: Jinja autoescaping (``html.py``), plus ``one_line`` and ``redact`` on
    every rendered value (``html_value``).

Readability: ``alice``, ``prod-cluster-01``, ``中文名``, ``dev_alice`` and ordinary
reasons are unchanged in every dialect. One value is cut at ``MAX_CHARS`` (300) with
``…`` in the digest and chat (a hostile 10,000-character name cannot push everything
else out of a size-limited message); the JSON report keeps it whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .redaction import redact

# Categories Cc, Cf, Zl, Zp and lone surrogates (Cs), as of Unicode 15.1 (tests/test_inert_text.py
# checks the running Python's tables against it).
UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u206f\ud800-\udfff\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f]"
)
LINE_BREAKS = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029")
REPLACEMENT = "\ufffd"
EMPTY = "(none)"


def _one_line_char(match: re.Match[str]) -> str:
    return " " if match.group() in LINE_BREAKS else REPLACEMENT


def one_line(text: str) -> str:
    """``text`` on one line with no control or format character (see the module docstring)."""
    return UNSAFE.sub(_one_line_char, text) if UNSAFE.search(text) else text


def _visible_char(match: re.Match[str]) -> str:
    char = match.group()
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
    if named:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(text: str) -> str:
    """For a person at a terminal: redacted, every unsafe character shown as its escape (``\\u202e``)."""
    text = redact(text)
    return UNSAFE.sub(_visible_char, text) if UNSAFE.search(text) else text


def _json_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_line(text: str) -> str:
    """A ``json.dumps(..., ensure_ascii=False)`` text with every unsafe character escaped.

    ``json.dumps`` escapes C0 controls but leaves U+2028/U+2029, NEL, C1 controls, bidi
    and zero-width characters and lone surrogates raw: a line splitter (``str.splitlines``,
    a JavaScript log viewer) would break the line there, a viewer would reorder it, and a
    lone surrogate cannot even be encoded. They only ever occur inside JSON strings, where
    ``\\uXXXX`` is the same value.
    """
    return UNSAFE.sub(_json_char, text) if UNSAFE.search(text) else text


def clean(value: object) -> str:
    """Redacted and on one line: the first step of every dialect."""
    return one_line(redact(str(value)))


MAX_CHARS = 300  # of one untrusted value in a chat message or the digest (the JSON report has it whole)


def _short(value: object) -> str:
    s = clean(value)
    return s if len(s) <= MAX_CHARS else s[: MAX_CHARS - 1] + "…"


# --- Markdown dialects ---------------------------------------------------------------------------

_NOT_INTRAWORD_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
_DOMAIN_DOT = re.compile(r"(?<=[^\W_])\.(?=[^\W_])")
_LEADING_NUMBER = re.compile(r"^(\d+)([.)])")
_MD_ALWAYS = re.compile(r"[\\`*\[\]<~]")
_MD_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")
_MD_LEADING = re.compile(r"^([#>+=-])")
_MD_SCHEME = re.compile(r":(?=//)")
_MD_WWW = re.compile(r"(?i)(www)\.")


class Dialect:
    """CommonMark: the Markdown digest (``report.md``, what ``kcguard summary`` prints)."""

    name = "markdown"

    def text(self, value: object) -> str:
        """An untrusted value in running text."""
        s = _short(value)
        s = _MD_ALWAYS.sub(r"\\\g<0>", s)
        s = _MD_ENTITY.sub(r"\\&", s)
        s = _NOT_INTRAWORD_UNDERSCORE.sub(r"\\_", s)
        s = _MD_WWW.sub(r"\1\\.", _MD_SCHEME.sub(r"\\:", s))
        s = _MD_LEADING.sub(r"\\\1", s)
        return _LEADING_NUMBER.sub(r"\1\\\2", s)

    def code(self, value: object) -> str:
        """An untrusted value as an inline code span (backticks included)."""
        s = _short(value).replace("`", "ˋ")
        return f"`{s}`" if s else EMPTY

    def bold(self, trusted: str) -> str:
        return f"**{trusted}**"

    def heading(self, trusted: str, level: int) -> str:
        return f"{'#' * level} {trusted}"

    def quote(self, line: str) -> str:
        return f"> {line}"

    def bullet(self, line: str) -> str:
        return f"- {line}"

    def link(self, label: str, url: str) -> str:
        """A link to a configured (trusted) URL."""
        safe = url.strip().replace(" ", "%20").replace("(", "%28").replace(")", "%29")
        return f"[{label}]({safe.replace('<', '%3C').replace('>', '%3E')})"


_LOOKALIKES = {
    "\\": "＼",
    "`": "ˋ",
    "*": "∗",
    "[": "［",
    "]": "］",
    "<": "＜",
    ">": "＞",
    "&": "＆",
    "~": "∼",
    "#": "＃",
    "@": "＠",
}
_LOOKALIKE_CHARS = re.compile("[" + re.escape("".join(_LOOKALIKES)) + "]")
_LEADING_LOOKALIKES = {"-": "‐", "+": "＋", "=": "＝"}  # a list item or setext underline
_NUMBER_LOOKALIKES = {".": "．", ")": "）"}  # an ordered list item


def _defang(s: str, replace: Callable[[re.Match[str]], str]) -> str:
    """Look-alikes for markup characters, URLs and domain dots (chat dialects)."""
    s = _LOOKALIKE_CHARS.sub(replace, s)
    s = _NOT_INTRAWORD_UNDERSCORE.sub("ˍ", s)
    s = s.replace("://", "꞉//")
    s = _DOMAIN_DOT.sub("․", s)
    if s[:1] in _LEADING_LOOKALIKES:
        s = _LEADING_LOOKALIKES[s[0]] + s[1:]
    if m := _LEADING_NUMBER.match(s):
        s = m.group(1) + _NUMBER_LOOKALIKES[m.group(2)] + s[m.end() :]
    return s


def _lookalike(match: re.Match[str]) -> str:
    return _LOOKALIKES[match.group()]


class LookalikeDialect(Dialect):
    """DingTalk and WeCom markdown: CommonMark-like structure, look-alikes for untrusted text."""

    def __init__(self, name: str) -> None:
        self.name = name

    def text(self, value: object) -> str:
        return _defang(_short(value), _lookalike)

    def code(self, value: object) -> str:
        s = self.text(value)
        return f"`{s}`" if s else EMPTY


class FeishuDialect(LookalikeDialect):
    """Feishu/Lark ``lark_md``: bold, links and plain lines; no headings or quotes."""

    def heading(self, trusted: str, level: int) -> str:
        return self.bold(trusted)

    def quote(self, line: str) -> str:
        return line


_SLACK_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_SLACK_SPECIAL = re.compile("[&<>]")


def _slack_entity(match: re.Match[str]) -> str:
    return _SLACK_ENTITIES[match.group()]


def _slack_char(match: re.Match[str]) -> str:
    char = match.group()
    return _SLACK_ENTITIES.get(char) or _LOOKALIKES[char]


def slack_escape(text: str) -> str:
    """Slack's documented escaping of ``& < >`` (for trusted text too)."""
    return _SLACK_SPECIAL.sub(_slack_entity, text)


class SlackDialect(Dialect):
    """Slack mrkdwn: ``*bold*``, ``<url|label>`` links, headings as bold lines, ``•`` bullets."""

    name = "slack"

    def text(self, value: object) -> str:
        s = _short(value)
        if s.startswith(">"):
            s = "＞" + s[1:]
        return _defang(s, _slack_char)

    def code(self, value: object) -> str:
        s = self.text(value)
        return f"`{s}`" if s else EMPTY

    def bold(self, trusted: str) -> str:
        return f"*{trusted}*"

    def heading(self, trusted: str, level: int) -> str:
        return self.bold(trusted.replace("*", ""))

    def bullet(self, line: str) -> str:
        return f"• {line}"

    def link(self, label: str, url: str) -> str:
        safe = slack_escape(url.strip().replace("|", "%7C").replace(" ", "%20"))
        return f"<{safe}|{slack_escape(label).replace('|', '│')}>"


MARKDOWN = Dialect()
DINGTALK = LookalikeDialect("dingtalk")
WECOM = LookalikeDialect("wecom")
FEISHU = FeishuDialect("feishu")
SLACK = SlackDialect()
DIALECTS: tuple[Dialect, ...] = (MARKDOWN, DINGTALK, WECOM, FEISHU, SLACK)


def html_value(value: object) -> object:
    """Jinja ``finalize`` of the HTML report: every rendered string redacted and on one line.

    Escaping itself is Jinja's autoescape (after this).
    """
    if not isinstance(value, str) or hasattr(value, "__html__"):  # Markup: the template's own output
        return value
    return clean(value)


def rich_text(value: object) -> str:
    """An untrusted value for rich console markup (``kcguard`` tables): escaped markup, visible escapes."""
    from rich.markup import escape

    return escape(visible(str(value)))

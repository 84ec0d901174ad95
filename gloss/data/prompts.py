"""Prompt templates: a history of titles -> the prompt text, the next title -> the completion text.

`PAPER_TEMPLATE` is GLoSS's prompt (make_hfdataset.py). A template is a plain dataclass so a config can
swap any piece; `{eos}` in a piece is replaced by the tokenizer's EOS token (the compact template of the
offline generator separates items with EOS, so prompt(h) + completion(t) == prompt(h + [t]) and one packed
sequence per user trains every prefix at once).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from gloss.data.split import TITLE_FORMAT

PAPER_INSTRUCTION = (
    "Below is a customer's purchase history on Amazon, listed in chronological order (earliest to latest). \n"
    "Each item is represented by the following format: Title: <item title> \n"
    "Based on this history, predict **only one** item the customer is most likely to purchase next in the same format.\n\n"
)


@dataclass(frozen=True)
class PromptTemplate:
    instruction: str = PAPER_INSTRUCTION
    history_header: str = "### Purchase history:\n"
    item_format: str = TITLE_FORMAT
    item_separator: str = "\n"
    next_header: str = "\n\n### Next item:\n"
    max_history_items: int | None = None  # keep only the most recent items (None: all; token truncation still applies)

    def item(self, title: str) -> str:
        return self.item_format.format(title=title)

    def prompt(self, titles: Sequence[str], eos: str = "") -> str:
        if self.max_history_items is not None:
            titles = titles[len(titles) - self.max_history_items :] if len(titles) > self.max_history_items else titles
        def piece(text: str) -> str:  # only the template's own text: a title is inserted literally, "{eos}" and all
            return text.replace("{eos}", eos)

        body = piece(self.item_separator).join(self.item(t) for t in titles)
        return piece(self.instruction) + piece(self.history_header) + body + piece(self.next_header)

    def completion(self, title: str) -> str:
        """The target text, without EOS (the tokenizer's EOS id is appended after tokenizing)."""
        return self.item(title)

    def packs(self) -> bool:
        """True when prompt(h) + completion(t) + EOS == prompt(h + [t]): one sequence trains every prefix."""
        return self.instruction == "" and self.history_header == "" and self.item_separator == self.next_header == "{eos}"

    def title_of(self, generated: str) -> str:
        """Undo `item_format` on a generated completion (e.g. strip a leading 'Title:')."""
        text = generated.strip()
        head = self.item_format.split("{title}")[0].strip()
        if head and text.startswith(head):
            text = text[len(head) :].strip()
        return text


PAPER_TEMPLATE = PromptTemplate()

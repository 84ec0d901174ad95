"""Issue 26: a title is data. A title containing a template placeholder (`{eos}`) is inserted literally into a
generator prompt; only the template's own pieces have `{eos}` replaced by the tokenizer's EOS."""
from gloss.data.prompts import PAPER_TEMPLATE, PromptTemplate

COMPACT = PromptTemplate(instruction="", history_header="", item_format="{title}", item_separator="{eos}",
                         next_header="{eos}")


def test_placeholder_in_a_title_is_kept_literally():
    titles = ["Nail {eos} Polish", "Mascara {title} {0}"]
    assert COMPACT.prompt(titles, eos="</s>") == "Nail {eos} Polish</s>Mascara {title} {0}</s>"
    paper = PAPER_TEMPLATE.prompt(titles, eos="</s>")
    assert "Title: Nail {eos} Polish\nTitle: Mascara {title} {0}" in paper and "</s>" not in paper

from gloss.data.dataset import GlossData, load_dataset
from gloss.data.split import TITLE_FORMAT, Catalog, Split, serialize_title, split_leave_one_out

__all__ = ["GlossData", "load_dataset", "Catalog", "Split", "TITLE_FORMAT", "serialize_title", "split_leave_one_out"]

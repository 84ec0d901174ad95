"""Run folders saved before a model setting existed (or after one was removed) still load: the saved model node is
brought up to today's model config, and the log says what changed."""
from omegaconf import OmegaConf

from gloss.run_folder import update_model_settings


def test_a_setting_added_since_takes_todays_default_and_a_removed_one_is_dropped():
    saved = OmegaConf.create({"_target_": "gloss.models.sasrec.SASRec", "hidden": 7, "old_knob": 3})
    notes = update_model_settings(saved, "sasrec")
    assert saved.hidden == 7  # saved values win
    assert saved.loss == "ce" and "negatives" in saved  # added since: today's default (what older runs trained with)
    assert "old_knob" not in saved
    assert any("model.loss added" in n for n in notes) and any("old_knob dropped" in n for n in notes)


def test_parts_are_updated_and_a_node_of_another_class_is_left_as_saved():
    saved = OmegaConf.create({"_target_": "gloss.models.gloss_plus.GlossPlus", "parts": {
        "sasrec": {"_target_": "gloss.models.sasrec.SASRec", "hidden": 7}}})
    update_model_settings(saved, "gloss_plus")
    assert saved.parts.sasrec.loss == "ce" and saved.parts.sasrec.hidden == 7
    other = OmegaConf.create({"_target_": "my.Model", "x": 1})
    assert update_model_settings(other, "sasrec") == [] and OmegaConf.to_container(other) == {"_target_": "my.Model", "x": 1}

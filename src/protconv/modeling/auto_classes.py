"""The registration table shared by every model family: which transformers Auto class loads which model class.

A family defines one model class per entry, named ``<family prefix><suffix>`` (``ConvForMaskedLM``) in its
``modeling_<family>.py``. From this one table derive the ``auto_map`` that every saved config carries (so a folder
loads with ``trust_remote_code=True`` through any Auto class, not only the one that saved it), the
``register_for_auto_class`` calls that make ``save_pretrained`` copy the code, protconv's own Auto registration
(``protconv.registry``) and the package exports. Adding a head means one line here and one small class per family.
"""

from __future__ import annotations

from typing import Any

#: Auto class name -> model class-name suffix.
AUTO_MODEL_SUFFIXES: dict[str, str] = {
    "AutoModel": "Model",
    "AutoModelForMaskedLM": "ForMaskedLM",
    "AutoModelForPreTraining": "ForPreTraining",
    "AutoModelForSequenceClassification": "ForSequenceClassification",
    "AutoModelForTokenClassification": "ForTokenClassification",
}


def family_auto_map(family: str) -> dict[str, str]:
    """``auto_map`` of family ``family`` (e.g. ``"Conv"``): ``configuration_conv.ConvConfig`` and the models."""
    modeling = f"modeling_{family.lower()}"
    return {
        "AutoConfig": f"configuration_{family.lower()}.{family}Config",
        **{auto: f"{modeling}.{family}{suffix}" for auto, suffix in AUTO_MODEL_SUFFIXES.items()},
    }


def register_family(config_class: Any, *model_classes: Any) -> dict[str, Any]:
    """Map each Auto class name to the family's model class for it, and mark every class for ``auto_map``.

    Raises ``TypeError`` if ``model_classes`` is not exactly one class per ``AUTO_MODEL_SUFFIXES`` entry named by
    the convention, so a family cannot silently miss a head.
    """
    family = config_class.family
    by_name = {cls.__name__: cls for cls in model_classes}
    expected = {auto: f"{family}{suffix}" for auto, suffix in AUTO_MODEL_SUFFIXES.items()}
    if set(by_name) != set(expected.values()):
        raise TypeError(f"{family} registers {sorted(by_name)}, expected {sorted(expected.values())}")
    table = {auto: by_name[name] for auto, name in expected.items()}
    # Saving any of these classes copies the family's files and their siblings next to the weights.
    config_class.register_for_auto_class("AutoConfig")
    for auto, model_class in table.items():
        model_class.register_for_auto_class(auto)
    return table

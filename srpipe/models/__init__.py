"""The model zoo: a registry of the survey's 15 networks plus the bicubic baseline.

Families are imported by name, not discovered by scanning the folder, so one broken file cannot hide the others
(BasicSR #663). Importing this package imports torch and nothing heavier.
"""

# isort: off
from srpipe.models import (  # noqa: F401  (imported for their registrations, in the survey's order)
    bicubic,
    srcnn,
    fsrcnn,
    espcn,
    vdsr,
    drcn,
    red,
    drrn,
    lapsrn,
    srdensenet,
    srresnet,
    srgan,
    memnet,
    edsr,
    rdn,
    rcan,
    drn,
)

# isort: on
from srpipe.models.registry import (
    ArchConfig,
    ModelCard,
    Recipe,
    SRModel,
    count_params,
    create_model,
    get_card,
    get_config,
    list_models,
    register_model,
)

__all__ = [
    "ArchConfig",
    "ModelCard",
    "Recipe",
    "SRModel",
    "count_params",
    "create_model",
    "get_card",
    "get_config",
    "list_models",
    "register_model",
]

"""winnow: select instruction-tuning data for large language models.

>>> import winnow
>>> result = winnow.select(dataset_or_path, "ifd", budget="5%")
>>> result.subset, result.scores                 # datasets.Dataset each (see winnow.api)
"""

__version__ = "0.1.0"
__all__ = ["SelectResult", "select"]


def __getattr__(name: str):
    """``select`` and ``SelectResult`` from :mod:`winnow.api`, imported on first use."""
    if name in __all__:
        from winnow import api

        return getattr(api, name)
    raise AttributeError(f"module 'winnow' has no attribute {name!r}")

"""The input contract of a model dethrone did not train, read from its MLflow signature.

dethrone's own models carry a :class:`~dethrone.registry.records.ModelInfo` on their training run.
A team's own challenger (``dethrone experiment start --challenger models:/NAME/VERSION``)
has only what MLflow logged with it; its signature names the input columns and their
types, which is what scoring it offline needs.
"""

from __future__ import annotations

import numpy as np
from mlflow.models import get_model_info
from mlflow.types import ColSpec, DataType

from dethrone.registry.records import ModelInfo


def signature_info(model_uri: str, *, target: str) -> ModelInfo | None:
    """The :class:`ModelInfo` of the model at ``model_uri`` from its signature, or None.

    Features are the named input columns; string and boolean ones are categorical. The
    task is ``regression`` when the model outputs floats (or declares no output), else
    ``classification``. ``target`` is the label column (``TARGET``). None when the model
    has no signature with named input columns.
    """
    signature = get_model_info(model_uri).signature
    inputs = signature.inputs if signature is not None else None
    if inputs is None or not inputs.has_input_names():
        return None
    # a schema's inputs are all named or all unnamed: has_input_names() says all are named
    columns = [c for c in inputs.inputs if isinstance(c, ColSpec)]
    names = [c.name for c in columns if c.name is not None]
    categorical = [
        c.name
        for c in columns
        if c.name is not None and c.type in (DataType.string, DataType.boolean)
    ]
    outputs = signature.outputs.inputs if signature.outputs is not None else []
    # a column output has a DataType, a tensor output (numpy predictions) a numpy dtype
    kind = outputs[0].type if outputs else DataType.double
    numeric_out = (
        kind in (DataType.double, DataType.float)
        if isinstance(kind, DataType)
        else np.issubdtype(kind, np.floating)
    )
    return ModelInfo(
        features=names,
        categorical=categorical,
        numeric=[name for name in names if name not in categorical],
        target=target,
        task="regression" if numeric_out else "classification",
    )

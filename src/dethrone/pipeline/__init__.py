"""The offline pipeline that main_pipeline wires: fetch a slice, check drift, train a
challenger, pre-screen it offline, register and promote.

:mod:`~dethrone.pipeline.steps` holds the steps the DAG calls, each taking a
:class:`~dethrone.pipeline.context.PipelineContext` (its collaborators);
:mod:`~dethrone.pipeline.training` fits the default model, :mod:`~dethrone.pipeline.trainer`
loads a user trainer, :mod:`~dethrone.pipeline.staging` moves frames as Parquet.
"""

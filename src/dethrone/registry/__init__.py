"""MLflow: the model registry and its aliases, the typed records stored as tags (the only
place tag names are spelled), run logging, model contracts and the status summary."""

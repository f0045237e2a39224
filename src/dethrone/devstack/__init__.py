"""The embedded local stack: MLflow, the router and Airflow as processes on 127.0.0.1."""

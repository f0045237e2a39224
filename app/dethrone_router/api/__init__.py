"""The router's blueprints: traffic config, data slices, serving, feedback, operations."""

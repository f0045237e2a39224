"""The prediction gateway's internals: model loading and hot swap, micro-batching, sticky
assignment, request inputs and the prediction log writer."""

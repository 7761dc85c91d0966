"""The versioned model registry (`versions`) and its promotion record (`promotion`): what was trained, and which
version of each model the gate allows Serve to serve."""

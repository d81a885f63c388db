"""Model loading: offline-first name resolution, a shared sentence encoder, spaCy and GLiNER loaders."""

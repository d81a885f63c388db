"""Model loaders only: offline-first name resolution (resolve.py), one loader base for every Hugging Face
model (base.py) and its kinds: the sentence encoder, the cross-encoder, GLiNER; spaCy pipelines.

What the models compute for linking lives in glinker/linking; GLiNER NER in glinker/ner.py.
"""

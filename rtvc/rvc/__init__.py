"""RVC voices: our own RVC v1/v2 synthesizer, content features, F0 estimators and feature retrieval.

Everything here needs the `rvc` extra (torch, transformers, faiss-cpu, torchfcpe, torchcrepe); the core
engine and the default voice do not.
"""

"""Merchandiser tuning: hybrid BM25/vector weights and the LTR re-rank blend, versioned."""

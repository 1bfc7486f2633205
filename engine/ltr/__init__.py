"""Learning-to-rank: features, the GBDT+LR model, the click simulator, re-ranking and export.

* :mod:`engine.ltr.features` — the versioned feature list and pure extraction;
* :mod:`engine.ltr.model` — GBDT leaves -> one-hot -> logistic regression, saved as JSON;
* :mod:`engine.ltr.simulator` — SIMULATED queries and click logs (tests, demos, the default model);
* :mod:`engine.ltr.rerank` — ``rerank(candidates, ...)`` for the search service;
* :mod:`engine.ltr.export` — optional OpenSearch LTR plugin featureset/model JSON.
"""

"""The fixed contract of ``metrics.json``: the task names, the metric keys each task reports,
each task's primary metric and what every key means."""

from __future__ import annotations

TASK_NAMES: tuple[str, ...] = ("joint", "binary", "search", "looks", "ltr", "latency")
LATENCY_QUERY_TYPES: tuple[str, ...] = ("text", "image", "compose", "complete_the_look")
LATENCY_STATS: tuple[str, ...] = ("p50_ms", "p99_ms")

# task name -> the metric keys it must report (latency: query type -> {p50_ms, p99_ms}).
TASK_KEYS: dict[str, tuple[str, ...]] = {
    "joint": (
        "text_to_image_recall_at_10",
        "image_to_image_p_at_10_type_colour",
        "attr_top1_article_type",
        "attr_top1_base_colour",
    ),
    "binary": ("coarse_rerank_recall_at_10",),
    "search": (
        "text_ndcg_at_10",
        "text_ndcg_at_10_bm25",
        "compose_v_ndcg_at_10",
        "compose_t_ndcg_at_10",
        "compose_mm_ndcg_at_10",
        "category_top1",
        "category_top1_classifier_only",
    ),
    "looks": (
        "fitb_accuracy",
        "compatibility_auc",
        "partner_recall_at_10",
        "fitb_accuracy_popularity_baseline",
    ),
    "ltr": ("ndcg_at_10_before_rerank", "ndcg_at_10_after_rerank"),
    "latency": LATENCY_QUERY_TYPES,
}
# Tasks run only when asked for (``--tasks shopper``), not in the default run: name -> keys.
OPTIONAL_TASK_KEYS: dict[str, tuple[str, ...]] = {
    "shopper": (
        "type_p_at_10",
        "exact_recall_at_10",
        "category_top1",
        "today_type_p_at_10",
        "today_exact_recall_at_10",
        "today_category_top1",
    ),
}
# Tasks whose keys map to {stat: number} objects instead of numbers.
NESTED_KEYS: dict[str, tuple[str, ...]] = {"latency": LATENCY_STATS}

PRIMARY: dict[str, str] = {
    "joint": "text_to_image_recall_at_10",
    "binary": "coarse_rerank_recall_at_10",
    "search": "text_ndcg_at_10",
    "looks": "fitb_accuracy",
    "ltr": "ndcg_at_10_after_rerank",
}

KEY_DESCRIPTIONS: dict[str, str] = {
    # shopper task (evaluation.tasks.shopper); prefixes today_, whole_only_, object_only_,
    # untrained_ name the pipeline variants
    "type_p_at_10": "shopper photo -> index, share of the top 10 of the photo's article type",
    "exact_recall_at_10": "shopper photo -> index, the photographed item in the top 10",
    "localised_share": "share of query photos cropped by the objectness box",
    "box_iou": "IoU of the box used and the true object box (synthetic photos)",
    # fit task (evaluation.tasks.fit), each key measured for both bundles
    "type_top1": "photo type top-1 (attribute + type heads) on test photos",
    "colour_top1": "photo colour (group) top-1 on test photos",
    "category_top1_classifier": "photo category top-1, classifier alone",
    "category_top1_knn_vote": "photo category top-1, k-NN vote over the training photos alone",
    "category_top1_fusion": "photo category top-1, classifier fused with the vote",
    "category_top1_served": "what search serves: the fusion when the bundle knows the types, "
    "else the vote alone",
    "type_label_coverage": "share of the catalog's products whose type the bundle's labels hold",
    "text_to_image_recall_at_10": "attribute text query -> product photos, recall@10",
    "image_to_image_p_at_10_type_colour": "photo -> photos, precision@10 (same type and colour)",
    "image_to_image_p_at_10_ceiling": "best precision@10 any ranking can reach on that gallery",
    "image_to_image_p_at_10_reranked": "photo -> photos as photo search ranks them (top 60 "
    "re-scored by colour/type agreement), precision@10",
    "photo_to_products_p_at_10_type_colour": "photo -> test products as indexed (attributes "
    "from photo + text), photo-search ranking, precision@10",
    "attr_top1_article_type": "article type predicted from the photo, top-1 accuracy",
    "attr_top1_base_colour": "base colour predicted from the photo, top-1 accuracy",
    "coarse_rerank_recall_at_10": "binary-code coarse search + rerank vs exact top-10",
    "text_ndcg_at_10": "hybrid text search, graded nDCG@10",
    "text_ndcg_at_10_bm25": "baseline: BM25 only, graded nDCG@10",
    "compose_v_ndcg_at_10": "'this but in <colour>': visual nDCG@10",
    "compose_t_ndcg_at_10": "'this but in <colour>': text nDCG@10",
    "compose_mm_ndcg_at_10": "'this but in <colour>': geometric mean of visual and text",
    "category_top1": "query -> category, top-1 accuracy",
    "category_top1_classifier_only": "query -> category by the classifier alone, top-1",
    "image_p_at_10_type_colour": "photo search through the service (category-restricted k-NN "
    "+ colour/type re-rank), "
    "precision@10 of same article type and colour over the whole index",
    "fitb_accuracy": "fill-in-the-blank (4 choices) accuracy",
    "compatibility_auc": "real vs corrupted looks, ROC AUC",
    "partner_recall_at_10": "complete-the-look partners, recall@10",
    "fitb_accuracy_popularity_baseline": "baseline: FITB by item popularity",
    "ndcg_at_10_before_rerank": "nDCG@10 before learning-to-rank",
    "ndcg_at_10_after_rerank": "nDCG@10 after learning-to-rank",
}

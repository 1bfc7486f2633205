"""Complete the look: slots, look mining, the type-aware compatibility model and retrieval."""

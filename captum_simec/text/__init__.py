"""Text models: token-level summaries, walks in embedding space, and walks read as tokens.

- `token_scores`: one score per token from a (batch, T, H) map over token embeddings
  (`LayerSiMECAttribution` on the embedding layer, with integer ids as inputs);
- `embedding_simec`, `embedding_simexp`: SiMEC / SiMExp walks of the input embeddings of
  token ids, with the ids and the attention mask held fixed;
- `read_tokens`: every saved point of such a walk as its nearest vocabulary tokens (L2 and
  cosine), and which positions changed while the prediction stayed (`TokenReading`).

Nothing here needs Hugging Face `transformers`: any model with an embedding module works.
"""

from captum_simec.text.reader import DISTANCES, NearestTokens, TokenReading, read_tokens
from captum_simec.text.tokens import TOKEN_REDUCTIONS, token_scores
from captum_simec.text.walks import embedding_simec, embedding_simexp

__all__ = [
    "DISTANCES",
    "TOKEN_REDUCTIONS",
    "NearestTokens",
    "TokenReading",
    "embedding_simec",
    "embedding_simexp",
    "read_tokens",
    "token_scores",
]

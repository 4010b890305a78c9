"""The stages a run is made of: tokenizer, pretrain and finetune (an ordinary recipe is finetune alone)."""

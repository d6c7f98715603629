"""Write a veRL FSDP checkpoint of a tiny random Llama with veRL's own ``FSDPCheckpointManager``.

Run as a script (``python verl_tiny_checkpoint.py TOKENIZER_DIR OUT_DIR STEP CONTENTS``) so that
torch.distributed (a one-process gloo group, as FSDP needs) lives and dies in its own process.
The original weights go to ``OUT_DIR/original.pt`` for comparison.
"""

from __future__ import annotations

import os
import socket
import sys


def main(tokenizer_dir: str, out: str, step: int, contents: list[str]) -> None:
    import torch
    from omegaconf import OmegaConf
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager

    with socket.socket() as s:  # a free port for the one-process group
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    torch.distributed.init_process_group("gloo", rank=0, world_size=1)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         tie_word_embeddings=True, architectures=["LlamaForCausalLM"],
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, os.path.join(out, "original.pt"))
    fsdp = FSDP(model, device_id=torch.device("cpu"), use_orig_params=True)
    optimizer = torch.optim.AdamW(fsdp.parameters(), lr=1e-3)
    manager = FSDPCheckpointManager(model=fsdp, optimizer=optimizer, lr_scheduler=None, processing_class=tokenizer,
                                    checkpoint_config=OmegaConf.create({"save_contents": contents,
                                                                        "load_contents": ["model"]}))
    manager.save_checkpoint(os.path.join(out, f"global_step_{step}", "actor"), global_step=step, max_ckpt_to_keep=2)
    with open(os.path.join(out, "latest_checkpointed_iteration.txt"), "w") as fh:  # as veRL's trainer does
        fh.write(str(step))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(","))

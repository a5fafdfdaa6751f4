"""Write legacy fixtures with the code at 03780ed (run from that checkout's src)."""
import sys
from pathlib import Path
import numpy as np
import torch
from torch import nn

from latentbridge.training import checkpoint as ck
from latentbridge.data import cache as dc

out = Path(sys.argv[1])
backbone = out / "backbone"
(backbone / "sub").mkdir(parents=True)
(backbone / "config.json").write_text('{"hidden_size": 8}\n')
(backbone / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 4)

fields = {"latent_dim": 8, "prefix_len": 2, "modernbert_model_files": dc.hash_path(backbone)}
fp = ck.config_fingerprint(fields, tuple(fields))
torch.manual_seed(0)
emb = nn.Embedding(5, 4)
head = nn.Linear(4, 5, bias=False)
head.weight = emb.weight
model = nn.ModuleDict({"emb": emb, "head": head, "mid": nn.Linear(4, 3)})
opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
loss = model["head"](model["emb"](torch.tensor([1, 2]))).pow(2).mean() + model["mid"](torch.ones(1, 4)).sum()
loss.backward(); opt.step()
state = ck.TrainState(stage="pretrain_middle", model=model.state_dict(), optimizer=opt.state_dict(),
                      scheduler={"last_epoch": 3, "base_lrs": [0.01]}, scaler={"scale": 65536.0},
                      loop={"epoch": 1, "batch": 3, "best": float("inf"), "pair": (1, 2), "by_int": {1: "a"}},
                      config={"latent_dim": 8, "prefix_len": 2})
with ck.AsyncCheckpointer(out / "checkpoints", fingerprint=fp, keep_last=None) as saver:
    saver.save(3, state)
    saver.save_model(out / "checkpoints" / "best_model.pt", model.state_dict(), config={"latent_dim": 8}, step=3, stage="pretrain_middle")

manifest = {"format": dc.CACHE_FORMAT, "version": dc.CACHE_VERSION, "fingerprint": "e" * 64, "latent_dtype": "int8",
            "fields": ["target_ids"], "source_names": ["dialogue"], "latent_dim": 4, "pad_token_id": 0}
final = out / "cache" / ("e" * 16)
with dc.CacheBuild(final, manifest) as build:
    w = build.split_writer("dialogue", "train")
    rng = np.random.default_rng(0)
    for i in range(3):
        w.write(dc.encode_record(f"ex{i}", "dialogue", rng.standard_normal((2, 4)), rng.standard_normal((2, 4)),
                                 True, {"target_ids": [5, 6, i]}), "dialogue")
    build.close_split(w, {})
    (build.tmp / "encoder_state.safetensors").write_bytes(b"x" * 100)
    build.record_extra_files()
    build.commit()
print(fp, dc.hash_path(backbone))

"""The same PyTorch training loop twice: train_plain.py (a plain torchvision loop, ERM) and
train_reinforced.py (DR on a drkit store).

What changes is marked ``# drkit`` here: the dataset (the store replaces your augmentation
transform), ``set_epoch``, the unpacked triple and the loss — 4 lines. An item is
``(view, target, label)``: the stored augmentation replayed exactly (float32 ``(C, H, W)`` in
[0, 1], not normalised — normalise in your model as you would), the teacher's soft label (float32
``(classes,)``, summing to 1) and the original label (int).
Run ``drkit demo`` first (it makes the store), then:  python examples/train_reinforced.py
EPOCHS and STORE can be set in the environment.
"""

import os

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import drkit

EPOCHS, STORE = int(os.environ.get("EPOCHS", 30)), os.environ.get("STORE", "runs/demo/digits+")
torch.manual_seed(0)
base, test = drkit.load_dataset("digits"), drkit.load_dataset("digits:test")
train_set = drkit.ReinforcedDataset(base, STORE)  # drkit
loader = DataLoader(train_set, batch_size=128, shuffle=True, num_workers=2)
model = drkit.create_model("smallcnn-16", num_classes=10, in_chans=1, image_size=(8, 8))
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=EPOCHS * len(loader))

for epoch in range(EPOCHS):
    train_set.set_epoch(epoch)  # drkit: another stored augmentation per sample each epoch
    model.train()
    for x, target, label in loader:  # drkit
        loss = drkit.soft_target_cross_entropy(model(x), target)  # drkit
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

model.eval()
with torch.no_grad():
    x = torch.stack([test.image(i) for i in range(len(test))]).float() / 255
    acc = (model(x).argmax(1).numpy() == test.labels).mean()
print(f"test top-1 {acc:.2%}")

"""The same PyTorch training loop twice: train_plain.py (ERM) and train_reinforced.py (DR).

The two files differ only in the lines marked ``# drkit``: wrap the dataset, change the loss.
Run ``drkit demo`` first (it makes the store), then:  python examples/train_reinforced.py
EPOCHS and STORE can be set in the environment.
"""

import os

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import drkit
from drkit.train import FreshAugmented

EPOCHS, STORE = int(os.environ.get("EPOCHS", 30)), os.environ.get("STORE", "runs/demo/digits+")
torch.manual_seed(0)
base, test = drkit.load_dataset("digits"), drkit.load_dataset("digits:test")
train_set = FreshAugmented(base, "randaugment")  # drkit
loader = DataLoader(train_set, batch_size=128, shuffle=True, num_workers=2)
model = drkit.create_model("smallcnn-16", num_classes=10, in_chans=1, image_size=(8, 8))
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=EPOCHS * len(loader))

for epoch in range(EPOCHS):
    train_set.set_epoch(epoch)  # new augmentations (or new stored ones) every epoch
    model.train()
    for x, target, label in loader:
        loss = F.cross_entropy(model(x), label)  # drkit
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

model.eval()
with torch.no_grad():
    x = torch.stack([test.image(i) for i in range(len(test))]).float() / 255
    acc = (model(x).argmax(1).numpy() == test.labels).mean()
print(f"test top-1 {acc:.2%}")

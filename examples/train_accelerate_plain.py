"""The same Hugging Face Accelerate loop twice: train_accelerate_plain.py (a plain torchvision
pipeline, ERM) and train_accelerate.py (DR on a drkit store) — train_plain.py and
train_reinforced.py with Accelerate's four changes (Accelerator, prepare, backward, unwrap).

What changes is marked ``# drkit`` in train_accelerate.py: the dataset (the store replaces your
augmentation transform), ``set_epoch``, the unpacked triple and the loss — 4 lines; your transform
and its dataset wrapper (marked ``# plain`` here) are no longer needed.
Run ``drkit demo`` first (it makes the store), then:  python examples/train_accelerate.py
or on several processes:  accelerate launch --num_processes 2 examples/train_accelerate.py
EPOCHS and STORE can be set in the environment.
"""

import os

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch.utils.data import DataLoader
from torch.utils.data import Dataset  # plain
from torchvision.transforms import v2  # plain

import drkit

EPOCHS, STORE = int(os.environ.get("EPOCHS", 30)), os.environ.get("STORE", "runs/demo/digits+")
torch.manual_seed(0)
accelerator = Accelerator()
base, test = drkit.load_dataset("digits"), drkit.load_dataset("digits:test")


class Augmented(Dataset):  # plain: your dataset with a torchvision v2 transform
    transform = v2.Compose([v2.RandomResizedCrop(8, scale=(0.35, 1.0), antialias=True),  # plain
                            v2.RandomHorizontalFlip(), v2.RandAugment(),  # plain
                            v2.ToDtype(torch.float32, scale=True), v2.RandomErasing(0.25)])  # plain

    def __len__(self):  # plain
        return len(base)  # plain

    def __getitem__(self, i):  # plain
        return self.transform(base.image(i)), int(base.labels[i])  # plain


train_set = Augmented()  # plain
loader = DataLoader(train_set, batch_size=128, shuffle=True, num_workers=2)
model = drkit.create_model("smallcnn-16", num_classes=10, in_chans=1, image_size=(8, 8))
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
model, opt, loader = accelerator.prepare(model, opt, loader)  # each process: its share of every epoch
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=EPOCHS * len(loader))

for epoch in range(EPOCHS):
    model.train()
    for x, label in loader:
        loss = F.cross_entropy(model(x), label)
        opt.zero_grad()
        accelerator.backward(loss)
        opt.step()
        sched.step()

model = accelerator.unwrap_model(model).eval()
with torch.no_grad():
    x = torch.stack([test.image(i) for i in range(len(test))]).float() / 255
    acc = (model(x.to(accelerator.device)).argmax(1).cpu().numpy() == test.labels).mean()
accelerator.print(f"test top-1 {acc:.2%}")  # once, from the main process

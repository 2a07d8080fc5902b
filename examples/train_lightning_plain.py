"""The same PyTorch Lightning module twice: train_lightning_plain.py (a plain torchvision pipeline,
ERM) and train_lightning.py (DR on a drkit store).

What changes is marked ``# drkit`` in train_lightning.py: the dataset (the store replaces your
augmentation transform), a ``set_epoch`` hook, the unpacked triple and the loss — 5 lines; your
transform and its dataset wrapper (marked ``# plain`` here) are no longer needed.
Run ``drkit demo`` first (it makes the store), then:  python examples/train_lightning.py
EPOCHS and STORE can be set in the environment. Lightning adds its DistributedSampler itself, so
``Trainer(devices=2, strategy="ddp")`` (or ``torchrun``) needs no further change.
"""

import os

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data import Dataset  # plain
from torchvision.transforms import v2  # plain

import drkit

EPOCHS, STORE = int(os.environ.get("EPOCHS", 30)), os.environ.get("STORE", "runs/demo/digits+")
torch.manual_seed(0)
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


class Classifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = drkit.create_model("smallcnn-16", num_classes=10, in_chans=1, image_size=(8, 8))

    def training_step(self, batch, batch_idx):
        x, label = batch
        return F.cross_entropy(self.model(x), label)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=3e-3, weight_decay=0.05)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


module = Classifier()
trainer = L.Trainer(max_epochs=EPOCHS, accelerator="cpu", logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False)
trainer.fit(module, loader)

model = module.model.eval()
with torch.no_grad():
    x = torch.stack([test.image(i) for i in range(len(test))]).float() / 255
    acc = (model(x).argmax(1).numpy() == test.labels).mean()
print(f"test top-1 {acc:.2%}")

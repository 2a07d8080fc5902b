"""The same PyTorch Lightning module twice: train_lightning_plain.py (a plain torchvision pipeline,
ERM) and train_lightning.py (DR on a drkit store).

What changes is marked ``# drkit`` here: the dataset (the store replaces your augmentation
transform), a ``set_epoch`` hook, the unpacked triple and the loss — 5 lines. An item is
``(view, target, label)`` as in train_reinforced.py.
Run ``drkit demo`` first (it makes the store), then:  python examples/train_lightning.py
EPOCHS and STORE can be set in the environment. Lightning adds its DistributedSampler itself and
``ReinforcedDataset`` works with it, so ``Trainer(devices=2, strategy="ddp")`` (or ``torchrun``)
needs no further change.
"""

import os

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import drkit

EPOCHS, STORE = int(os.environ.get("EPOCHS", 30)), os.environ.get("STORE", "runs/demo/digits+")
torch.manual_seed(0)
base, test = drkit.load_dataset("digits"), drkit.load_dataset("digits:test")
train_set = drkit.ReinforcedDataset(base, STORE)  # drkit
loader = DataLoader(train_set, batch_size=128, shuffle=True, num_workers=2)


class Classifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = drkit.create_model("smallcnn-16", num_classes=10, in_chans=1, image_size=(8, 8))

    def on_train_epoch_start(self):  # drkit: another stored augmentation per sample each epoch
        train_set.set_epoch(self.current_epoch)  # drkit

    def training_step(self, batch, batch_idx):
        x, target, label = batch  # drkit
        return drkit.soft_target_cross_entropy(self.model(x), target)  # drkit

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

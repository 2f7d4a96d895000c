"""A fitted model of neurons: its predictions scored, saved as DIR/model.pt with metrics.json and
figures, and turned into a VisionModel that every method takes."""

from __future__ import annotations

import os

import numpy as np

from . import metrics as M
from .fitting import predict
from .network import save


def _median(values):
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if len(v) else None


class FittedNeurons:
    """The trained network, its configuration, the per-epoch history and the test metrics."""

    def __init__(self, net, config, settings, recording, history, device="cpu"):
        self.net, self.config, self.settings = net, config, settings
        self.recording, self.history, self.device = recording, history, device
        train = predict(net, recording.train_images, config, device)
        config["best_training"] = train.max(0).values.tolist()  # what each MEI is compared with
        if net.members > 1:
            held = predict(net, recording.train_images, config, device, members=[0])
            config["best_training_held_out"] = held.max(0).values.tolist()
        self.test_prediction = predict(net, recording.test_images, config, device).numpy()
        self.held_out_prediction = None
        if net.members > 1:
            self.held_out_prediction = predict(
                net, recording.test_images, config, device, members=[0]
            ).numpy()
        self.metrics = self._metrics()

    def model(self):
        """The fitted network as a VisionModel (output layer ``neurons``)."""
        from ..models.zoo.neurons import vision_model

        return vision_model(self.net, self.config)

    def _metrics(self):
        r = self.recording
        test = r.test_responses.astype(np.float64)
        out = {
            "neurons": r.neurons,
            "train_images": len(r.train_images),
            "val_images": len(r.val_images),
            "test_images": len(r.test_images),
            "repeated_test_set": r.repeated,
            "test_correlation": M.trial_correlation(self.test_prediction, test).tolist(),
            "epochs": [len(h) for h in self.history],
            "best_val_correlation": [max(e[2] for e in h) for h in self.history],
        }
        if r.repeated:
            out["average_correlation"] = M.average_correlation(self.test_prediction, test).tolist()
            out["feve"] = M.feve(self.test_prediction, test).tolist()
        if self.held_out_prediction is not None:
            out["held_out_test_correlation"] = M.trial_correlation(
                self.held_out_prediction, test
            ).tolist()
        for key in ("test_correlation", "average_correlation", "feve", "held_out_test_correlation"):
            if key in out:
                out[f"median_{key}"] = _median(out[key])
        return out

    def save(self, folder, argv=None):
        """model.pt, metrics.png, training.png, then metrics.json (last: it marks a whole run)."""
        from ..io.files import write_metrics

        os.makedirs(folder, exist_ok=True)
        save(os.path.join(folder, "model.pt"), self.net, self.config)
        self.figures(folder)
        history = [[list(e) for e in h] for h in self.history]
        return write_metrics(
            folder,
            {"command": "neurons fit", **self.config, "settings": self.settings.as_dict()},
            argv,
            **self.metrics,
            history=history,
            files={"model": "model.pt", "metrics": "metrics.png", "training": "training.png"},
        )

    def figures(self, folder):
        """The distributions of the per-neuron metrics, and the training curves."""
        from ..io.figures import histograms, pyplot, save_figure

        groups = {"test correlation (single trials)": self.metrics["test_correlation"]}
        for key, name in (
            ("average_correlation", "correlation to trial average"),
            ("feve", "FEVE"),
        ):
            if key in self.metrics:
                groups[name] = self.metrics[key]
        title = f"{self.metrics['neurons']} neurons, {self.metrics['test_images']} test images"
        histograms(groups, os.path.join(folder, "metrics.png"), "per neuron", title, log=False)
        plt = pyplot()
        fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
        for i, h in enumerate(self.history):
            e = np.array(h)
            a.plot(e[:, 0], e[:, 1], lw=1, label=f"member {i + 1}")
            b.plot(e[:, 0], e[:, 2], lw=1)
        a.set(xlabel="epoch", ylabel=f"training loss ({self.settings.loss})")
        b.set(xlabel="epoch", ylabel="validation correlation")
        a.legend(fontsize=7)
        fig.tight_layout()
        save_figure(fig, os.path.join(folder, "training.png"))

    def summary(self, folder):
        m = self.metrics
        parts = [f"median test correlation {m['median_test_correlation']:.3f}"]
        if m.get("median_average_correlation") is not None:
            parts.append(f"to the trial average {m['median_average_correlation']:.3f}")
        if m.get("median_feve") is not None:
            parts.append(f"FEVE {m['median_feve']:.3f}")
        if m.get("median_held_out_test_correlation") is not None:
            parts.append(f"held-out member {m['median_held_out_test_correlation']:.3f}")
        return [
            f"wrote {os.path.join(folder, 'model.pt')}, metrics.json, metrics.png and training.png",
            f"{m['neurons']} neurons, epochs {m['epochs']}: " + ", ".join(parts),
        ]

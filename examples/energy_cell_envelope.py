"""Why the toy energy cell's shift invariance index is below 1: its envelope against its field.

    python examples/energy_cell_envelope.py

For energy-model complex cells with Gaussian envelopes of σ = 2 ... 10 px in the same 32 px
field, with the paper's settings (the λ sweep 0 ... 20.48, six templates, 1000 steps): the index,
the optimized texture's crop activation, the ideal grating's (the best periodic texture of an
energy cell: its orientation and wavelength, any phase) at the same norm, and the λ = 0
templates' (the best image of that norm). A texture spreads its norm over every crop position,
a template puts it under the envelope; the ratio ideal / λ = 0 is what a narrow envelope loses.
"""

from __future__ import annotations

from preimage.methods.cadena import invariance as I
from preimage.methods.cadena import invariance_texture as T
from preimage.models.zoo import v1_cells


def main():
    print("σ (px) | SII | texture crops | ideal grating | templates | λ = 0 | ideal / λ = 0")
    for sigma in (2.0, 4.0, 6.0, 8.0, 10.0):
        model = v1_cells.load_energy(sigma=sigma)
        result = I.run(model, I.InvarianceSettings(target="response:0"), progress=False)
        unit, sweep = result.units[0], result.sweeps[0]
        best = float(sweep.activations[0].mean())
        texture = v1_cells.periodic_grating(model, unit.extra["texture_norm"])
        ideal = float(T.all_crops_activation(model, "response", texture, [0], 32, I.centre_unit))
        print(
            f"{sigma:g} | {unit.shift_invariance_index:.3f} | {unit.crop_activation:.2f} |"
            f" {ideal:.2f} | {unit.template_activation:.2f} | {best:.2f} | {ideal / best:.3f}"
        )


if __name__ == "__main__":
    main()

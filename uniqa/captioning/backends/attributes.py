"""The ``attributes`` backend: offline, CPU; measured attributes -> one sentence per image
(:func:`uniqa.captioning.attributes.caption_batch` as one ``map_batches`` step)."""

from __future__ import annotations

from uniqa.captioning.attributes import ATTRIBUTES_MODEL, caption_batch
from uniqa.captioning.backends.base import DEFAULT_BLOCK_ROWS, Captioner, MapStep, Step, register
from uniqa.captioning.instructions import TaskPrompts


@register
class AttributesCaptioner(Captioner):
    name = "attributes"
    batch_size = 16

    @property
    def model(self) -> str:
        return ATTRIBUTES_MODEL

    def block_rows(self, todo: int | None, cpus: float) -> int:
        """Two blocks per CPU slot (``cpus`` / ``attributes.num_cpus``), within 64-1,024 rows. A row is ~3 ms of CPU
        and Ray's cost per task is fixed: 10,000 rows ran at 286 rows/s in 64-row blocks, 393 in 1,024-row ones on
        2 CPUs."""
        if not todo:
            return DEFAULT_BLOCK_ROWS
        slots = max(1, int(cpus // self.cfg.attributes.num_cpus))
        return max(DEFAULT_BLOCK_ROWS, min(1024, -(-todo // (2 * slots))))

    def steps(self, prompts: TaskPrompts) -> list[Step]:
        a = self.cfg.attributes
        kwargs = dict(prompts=dict(prompts), max_side=a.max_side, max_phrases=a.max_phrases,
                      max_pixels=self.cfg.max_pixels)
        return [MapStep(caption_batch, kwargs, batch_size=self.batch_size, num_cpus=a.num_cpus)]

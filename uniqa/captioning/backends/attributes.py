"""The ``attributes`` backend: offline, CPU; measured attributes -> one sentence per image
(:func:`uniqa.captioning.attributes.caption_batch` as one ``map_batches`` step)."""

from __future__ import annotations

from uniqa.captioning.attributes import ATTRIBUTES_MODEL, caption_batch
from uniqa.captioning.backends.base import Captioner, MapStep, Step, register
from uniqa.captioning.instructions import TaskPrompts


@register
class AttributesCaptioner(Captioner):
    name = "attributes"
    batch_size = 16

    @property
    def model(self) -> str:
        return ATTRIBUTES_MODEL

    def steps(self, prompts: TaskPrompts) -> list[Step]:
        a = self.cfg.attributes
        kwargs = dict(prompts=dict(prompts), max_side=a.max_side, max_phrases=a.max_phrases,
                      max_pixels=self.cfg.max_pixels)
        return [MapStep(caption_batch, kwargs, batch_size=self.batch_size, num_cpus=a.num_cpus)]

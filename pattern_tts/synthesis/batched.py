"""A truly batched Kokoro forward pass that reuses ``KModel``'s layers and weights.

``KModel.forward_with_tokens`` handles one item. Here a batch of items of different lengths is
padded and run through every stage at once, so that each item's output equals its batch-1 output:

* ALBERT gets an attention mask; every LSTM runs on packed sequences.
* Durations, alignments and frame counts are per item.
* Every instance norm (AdaIN) takes its statistics over the item's valid frames only, and padded
  frames are zeroed before each convolution, so convolutions see the zero padding batch-1 sees.
* The iSTFTNet source draws its noise per item from a per-request seed, in the same order and
  shapes as Kokoro, so ``torch.manual_seed(seed)`` before a batch-1 call reproduces it.
* STFT edges (reflect padding, window envelope) are computed per item; outputs are trimmed back.

Time lengths through the decoder, for an item of ``F`` frames (sum of its durations):
``F`` (decoder encode) -> ``2F`` (F0/N, generator input) -> ``20F`` -> ``120F + 1`` (STFT frames)
-> ``600F`` samples at 24 kHz.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pattern_tts.synthesis.fused import Fused
from pattern_tts.synthesis.kokoro_model import (
    AdaIN1d,
    AdainResBlk1d,
    AdaINResBlock1,
    Decoder,
    Generator,
    KModel,
)
from pattern_tts.synthesis.spectral_conv import spectral_conv1d

SAMPLES_PER_FRAME = 600  # one duration frame = 600 samples = 25 ms at 24 kHz
# With the per-item decoder (CPU), items share a text-side batch only while padding adds at most
# a quarter and none is longer than 128 tokens: on 2 CPU cores a batch of equal lengths took
# 0.42-0.67x the time of its items one by one up to 64 tokens, 0.77-0.86x at 128 and 0.95-0.98x
# at 256; a corpus mix as one batch (padded 2.8x) took 2.6x (bench/text_side.py).
MAX_TEXT_PADDING = 1.25
MAX_GROUPED_TOKENS = 128
# Resblock convolutions of this many taps or more run in the frequency domain with spectral_convs:
# 3 taps took 1.5-2.1x oneDNN's time that way (python -m bench.spectral_convs).
SPECTRAL_MIN_KERNEL = 7


@dataclass(frozen=True)
class BatchItem:
    """One request of a batch: token ids with Kokoro's boundary tokens, style, speed, seed."""

    input_ids: Tensor  # [L] long, 0 first and last
    ref_s: Tensor  # [256]
    speed: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class TokenSide:
    """The text side's token-level outputs for a padded batch (before expanding to frames)."""

    prosody: Tensor  # [B, Lmax, C] duration encoder output (the prosody predictor's features)
    text: Tensor  # [B, 512, Lmax] text encoder output
    ref_s: Tensor  # [B, 256] style vectors (decoder half first)
    seeds: Tensor  # [B] noise seeds (CPU)
    durations: Tensor  # [B, Lmax] frames per token, 0 on padded tokens
    token_lengths: Tensor  # [B]

    def select(self, i: int) -> TokenSide:
        """Item ``i`` alone, trimmed to its own length (a batch of one)."""
        return self.subset([i])

    def subset(self, rows: Sequence[int]) -> TokenSide:
        """The items ``rows`` (in that order) as a batch, trimmed to the longest of them."""
        rows = list(rows)
        index = torch.tensor(rows, device=self.prosody.device)
        n = int(self.token_lengths[index].max())
        return TokenSide(
            prosody=self.prosody[index, :n],
            text=self.text[index, :, :n],
            ref_s=self.ref_s[index],
            seeds=self.seeds[rows],  # on the CPU
            durations=self.durations[index, :n],
            token_lengths=self.token_lengths[index],
        )


@dataclass(frozen=True)
class Encoded:
    """The text side's output for a padded batch: what the decoder needs, plus lengths."""

    asr: Tensor  # [B, 512, Fmax] aligned text features, zero on padded frames
    f0: Tensor  # [B, 2 Fmax] F0 curve
    noise: Tensor  # [B, 2 Fmax] noise (N) curve
    style: Tensor  # [B, 128] decoder half of the style vector
    seeds: Tensor  # [B] noise seeds (CPU)
    frames: Tensor  # [B] frames per item (sum of durations)
    durations: Tensor  # [B, Lmax] frames per token, 0 on padded tokens
    token_lengths: Tensor  # [B]


@dataclass(frozen=True)
class BatchOutput:
    """One item's audio (float32, 24 kHz) and frames per token."""

    audio: Tensor  # [600 * sum(durations)]
    durations: Tensor  # [L] long


def _lengths_mask(lengths: Tensor, size: int) -> Tensor:
    """[B, 1, size] float mask, 1 where the position is inside the item."""
    positions = torch.arange(size, device=lengths.device)
    return (positions[None, :] < lengths[:, None]).unsqueeze(1).float()


def _full_precision(x: Tensor) -> Tensor:
    """``x`` in float32 if it is in a reduced precision (float64 stays float64)."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


class BatchedKokoro:
    """Runs ``KModel``'s modules on a padded batch. Stateless apart from the model.

    Fast path (all off by default): ``compile=True`` compiles the element-wise chains (masked
    AdaIN, AdaIN + Snake, the masked residual add; pattern_tts/synthesis/fused.py) with dynamic
    shapes; ``autocast_dtype`` runs the decoder's core (decoder blocks and the generator's upsampling
    stack) under autocast (bfloat16 / float16); ``spectral_convs=True`` runs the generator's
    resblock convolutions of ``SPECTRAL_MIN_KERNEL`` taps or more in the frequency domain
    (pattern_tts/synthesis/spectral_conv.py) where they run time-major in float32, that is on CPU
    without autocast. On CPU the generator's resblocks run time-major. Source, STFT and inverse STFT
    always run in float32.
    """

    def __init__(
        self,
        model: KModel,
        compile: bool = False,
        autocast_dtype: torch.dtype | None = None,
        spectral_convs: bool = False,
    ) -> None:
        self.model = model
        self.autocast_dtype = autocast_dtype
        self.fused = Fused(compile=compile)
        # On CPU the generator's resblocks keep their activations time-major (channels last):
        # oneDNN's convolutions, the dilated ones above all, measured faster on that layout (k=11,
        # dilation 5, 128 channels: bf16 39 against 55 ms with AVX-512 BF16, where float32 did not
        # change; float32 68 against 122 ms on an AVX2-only CPU; python -m bench.fp32_path).
        self.time_major = model.device.type == "cpu"
        self.spectral_convs = spectral_convs

    @property
    def device(self) -> torch.device:
        return self.model.device

    # ----------------------------------------------------------------------------------------
    # whole pipeline
    # ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, items: Sequence[BatchItem], batch_decoder: bool = True) -> list[BatchOutput]:
        """Synthesise every item. ``batch_decoder=False`` runs the decoder one item at a time
        (the same code on batches of one), which can be faster on CPUs, and the text side on
        groups of similar length (:func:`similar_length_groups`)."""
        outputs = dict(self.stream(items, batch_decoder=batch_decoder))
        return [outputs[i] for i in range(len(items))]

    @torch.no_grad()
    def stream(
        self,
        items: Sequence[BatchItem],
        batch_decoder: bool = True,
        wanted: Callable[[int], bool] | None = None,
    ) -> Iterator[tuple[int, BatchOutput]]:
        """Like ``__call__``, but yields ``(index, output)`` as soon as each item is done: all
        together after a batched decoder; one at a time, shortest first, with the per-item decoder,
        so that the short requests of a batch are not held back by its long ones.

        ``wanted(index)`` is asked before an item's text side and again before its decoder (per item,
        or once for the batched decoder's whole batch): an item no longer wanted (its client went
        away) is skipped, not yielded."""
        still_wanted = wanted or (lambda _: True)
        if batch_decoder:
            yield from self._stream_batched(items, still_wanted)
            return
        # The text side runs on groups of similar length, shortest group first: on CPU its cost
        # follows the padded size, so a short item padded to a long one's length costs more than
        # it gains. Everything at frame rate (F0/energy, decoder) runs per item, shortest first.
        for group in similar_length_groups([len(it.input_ids) for it in items]):
            group = [i for i in group if still_wanted(i)]
            if not group:
                continue
            tokens = self.encode_tokens([items[i] for i in group])
            frames = tokens.durations.sum(dim=1)
            for k in sorted(range(len(group)), key=lambda k: int(frames[k])):
                if not still_wanted(group[k]):
                    continue
                encoded = self.encode_frames(tokens.select(k))
                yield group[k], self._output(encoded, 0, self.decode(encoded)[0])

    def _stream_batched(
        self, items: Sequence[BatchItem], wanted: Callable[[int], bool]
    ) -> Iterator[tuple[int, BatchOutput]]:
        """The batched decoder's path: the items still wanted, in one padded batch all through. Items
        no longer wanted once the text side is done leave the batch before its decoder, the bulk of
        the work; the batch is then as long as the longest item that is left."""
        rows = [i for i in range(len(items)) if wanted(i)]
        if not rows:
            return
        tokens = self.encode_tokens([items[i] for i in rows])
        kept = [k for k, i in enumerate(rows) if wanted(i)]
        if not kept:
            return
        if len(kept) < len(rows):
            tokens, rows = tokens.subset(kept), [rows[k] for k in kept]
        encoded = self.encode_frames(tokens)
        audio = self.decode(encoded)
        for k, i in enumerate(rows):
            yield i, self._output(encoded, k, audio[k])

    @staticmethod
    def _output(encoded: Encoded, i: int, audio: Tensor) -> BatchOutput:
        """Item ``i``'s audio and durations, trimmed to its own length."""
        return BatchOutput(
            audio=audio[: int(encoded.frames[i]) * SAMPLES_PER_FRAME],
            durations=encoded.durations[i, : int(encoded.token_lengths[i])],
        )

    @torch.no_grad()
    def encode_tokens(self, items: Sequence[BatchItem]) -> TokenSide:
        """The token-level text side on a padded batch: ALBERT, prosody features, durations, text encoder."""
        m = self.model
        device = self.device
        lengths = torch.tensor([len(it.input_ids) for it in items], device=device)
        input_ids = nn.utils.rnn.pad_sequence(
            [it.input_ids.to(device) for it in items], batch_first=True
        )
        max_len = input_ids.shape[1]
        text_mask = torch.arange(max_len, device=device)[None, :] >= lengths[:, None]  # True = pad
        ref_s = torch.stack([it.ref_s.to(device) for it in items])
        speed = torch.tensor([it.speed for it in items], device=device, dtype=torch.float32)

        bert_dur = m.bert(input_ids, attention_mask=(~text_mask).int())
        d_en = m.bert_encoder(bert_dur).transpose(-1, -2)
        d = m.predictor.text_encoder(d_en, ref_s[:, 128:], lengths, text_mask)
        x = self._packed_lstm(m.predictor.lstm, d, lengths)
        duration = torch.sigmoid(m.predictor.duration_proj(x)).sum(dim=-1) / speed[:, None]
        durations = torch.round(duration).clamp(min=1).long().masked_fill(text_mask, 0)
        return TokenSide(
            prosody=d,
            text=m.text_encoder(input_ids, lengths, text_mask),
            ref_s=ref_s,
            seeds=torch.tensor([it.seed for it in items], dtype=torch.long),
            durations=durations,
            token_lengths=lengths,
        )

    @torch.no_grad()
    def encode_frames(self, tokens: TokenSide) -> Encoded:
        """The frame-level text side: alignment, F0/N curves and the decoder's aligned features."""
        frames = tokens.durations.sum(dim=1)
        alignment = self._alignment(tokens.durations, int(frames.max())).to(tokens.prosody.dtype)  # [B, L, Fmax]
        en = tokens.prosody.transpose(-1, -2) @ alignment
        f0, noise = self._f0_n(en, tokens.ref_s[:, 128:], frames)
        return Encoded(
            asr=tokens.text @ alignment,
            f0=f0,
            noise=noise,
            style=tokens.ref_s[:, :128],
            seeds=tokens.seeds,
            frames=frames,
            durations=tokens.durations,
            token_lengths=tokens.token_lengths,
        )

    @torch.no_grad()
    def source(self, enc: Encoded) -> Tensor:
        """The generator's harmonic source of a padded batch -> [B, 600 * Fmax], float32."""
        gen = self.model.decoder.generator
        f0 = gen.f0_upsamp(enc.f0[:, None]).transpose(1, 2)  # [B, 600 Fmax, 1]
        return self._source(gen, f0, enc.frames * SAMPLES_PER_FRAME, enc.seeds)

    @torch.no_grad()
    def decode(self, enc: Encoded, source: Tensor | None = None) -> Tensor:
        """Decoder + iSTFTNet generator on a padded batch -> [B, 600 * Fmax] audio; ``source``:
        the batch's harmonic source where already drawn (:meth:`source`)."""
        return self._decoder(self.model.decoder, enc, self.source(enc) if source is None else source)

    # ----------------------------------------------------------------------------------------
    # text side
    # ----------------------------------------------------------------------------------------
    @staticmethod
    def _packed_lstm(lstm: nn.LSTM, x: Tensor, lengths: Tensor) -> Tensor:
        """Run a batch_first LSTM over [B, T, C] with per-item lengths; zero beyond them."""
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out

    @staticmethod
    def _alignment(durations: Tensor, max_frames: int) -> Tensor:
        """[B, L, Fmax] one-hot alignment: frame f belongs to token i when end[i-1] <= f < end[i]."""
        end = durations.cumsum(dim=1)
        start = end - durations
        f = torch.arange(max_frames, device=durations.device)[None, None, :]
        return ((f >= start[..., None]) & (f < end[..., None])).float()

    def _f0_n(self, en: Tensor, s: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
        """``ProsodyPredictor.F0Ntrain`` on a batch: F0 and noise curves at 2x frame rate."""
        p = self.model.predictor
        x = self._packed_lstm(p.shared, en.transpose(-1, -2), frames).transpose(-1, -2)
        mask = _lengths_mask(frames, x.shape[-1])
        curves = []
        for blocks, proj in ((p.F0, p.F0_proj), (p.N, p.N_proj)):
            h, h_mask = x, mask
            for block in blocks:
                h, h_mask = self._adain_resblk(block, h, s, h_mask)
            curves.append((proj(h) * h_mask).squeeze(1))
        return curves[0], curves[1]

    # ----------------------------------------------------------------------------------------
    # masked building blocks
    # ----------------------------------------------------------------------------------------
    @staticmethod
    def _norm_style(mod: AdaIN1d, s: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, float]:
        """AdaIN1d's affine weight and bias, and the style's gamma and beta [B, C, 1]."""
        norm = mod.norm
        with torch.autocast(s.device.type, enabled=False):  # style scales stay in full precision
            gamma, beta = torch.chunk(mod.fc(s)[..., None], chunks=2, dim=1)
        # Plain tensors, not Parameters: the compiled functions then keep channel counts dynamic.
        weight = norm.weight.detach() if norm.affine else torch.ones_like(gamma[0, :, 0])
        bias = norm.bias.detach() if norm.affine else torch.zeros_like(gamma[0, :, 0])
        return weight, bias, gamma, beta, norm.eps

    def _adain(self, mod: AdaIN1d, x: Tensor, s: Tensor, mask: Tensor) -> Tensor:
        """AdaIN1d with instance-norm statistics over each item's valid frames; output masked."""
        return self.fused.adain(x, mask, *self._norm_style(mod, s))

    def _adain_resblk(
        self, block: AdainResBlk1d, x: Tensor, s: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """AdainResBlk1d on masked input; returns the output and its (maybe upsampled) mask."""
        upsample = block.upsample_type != "none"
        out_mask = F.interpolate(mask, scale_factor=2, mode="nearest") if upsample else mask
        h = block.actv(self._adain(block.norm1, x, s, mask))
        if upsample:
            h = block.pool(h) * out_mask
        h = block.conv1(h)
        h = block.actv(self._adain(block.norm2, h, s, out_mask))
        h = block.conv2(h)
        out = (h + block._shortcut(x)) * torch.rsqrt(torch.tensor(2.0, device=x.device))
        return out * out_mask, out_mask

    def _time_major(self, x: Tensor) -> Tensor:
        """``x`` [B, C, T] laid out time-major (strides (T*C, 1, C)) where ``time_major`` is on."""
        return x.transpose(1, 2).contiguous().transpose(1, 2) if self.time_major else x

    def _conv(self, conv: nn.Conv1d, x: Tensor) -> Tensor:
        """``conv(x)`` for the resblocks' stride-1 convolutions; with ``time_major``, as a 2-D
        convolution on channels-last memory, which oneDNN runs on ``x``'s own layout and answers in it
        (a 1-D convolution would reorder ``x`` to channels first and back). Its forward pre-hooks run
        first, as in ``conv(x)``: with weight norm as shipped (not folded) they set ``conv.weight``."""
        if not self.time_major:
            return conv(x)
        for hook in conv._forward_pre_hooks.values():
            hook(conv, (x,))
        if self._spectral(conv, x):
            return spectral_conv1d(x, conv.weight, conv.bias, conv.dilation[0])
        padding, dilation = (0, int(conv.padding[0])), (1, conv.dilation[0])
        x4 = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)  # a view for time-major x
        return F.conv2d(x4, conv.weight.unsqueeze(2), conv.bias, 1, padding, dilation).squeeze(2)

    def _spectral(self, conv: nn.Conv1d, x: Tensor) -> bool:
        """Whether ``conv`` on ``x`` runs in the frequency domain (see ``spectral_convs``)."""
        kernel, dilation = conv.kernel_size[0], conv.dilation[0]
        return (
            self.spectral_convs
            and kernel >= SPECTRAL_MIN_KERNEL
            and self.autocast_dtype is None
            and x.dtype in (torch.float32, torch.float64)
            and conv.weight.dtype == x.dtype
            and int(conv.padding[0]) == dilation * (kernel - 1) // 2
        )

    def _adain_resblock1(self, block: AdaINResBlock1, x: Tensor, s: Tensor, mask: Tensor) -> Tensor:
        """The generator's AdaINResBlock1 (Snake activations) on masked input."""
        dtype = self.autocast_dtype  # the convolutions' input dtype under autocast
        for c1, c2, n1, n2, a1, a2 in zip(
            block.convs1, block.convs2, block.adain1, block.adain2, block.alpha1, block.alpha2,
            strict=True,
        ):
            # Each activation is dropped as soon as the next step has read it: on CPU the longest items'
            # activations are the kokoro process's peak memory (one 128-channel tensor of a 25 s item
            # at the last stage is 58 MB).
            xt = self._conv(c1, self.fused.adain_snake(x, mask, *self._norm_style(n1, s), a1.detach(), dtype))
            h = self.fused.adain_snake(xt, mask, *self._norm_style(n2, s), a2.detach(), dtype)
            del xt
            xt = self._conv(c2, h)
            del h
            x = self.fused.masked_add(x, xt, mask)
            del xt
        return x

    # ----------------------------------------------------------------------------------------
    # decoder
    # ----------------------------------------------------------------------------------------
    def _decoder(self, dec: Decoder, enc: Encoded, source: Tensor) -> Tensor:
        gen = dec.generator
        har = self._harmonics(gen, source, enc.frames)
        dtype = self.autocast_dtype
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            spec, phase, rate = self._decoder_core(dec, enc.asr, enc.f0, enc.noise, enc.style, enc.frames, har)
        return self._istft(gen, _full_precision(spec), _full_precision(phase), rate)

    def _harmonics(self, gen: Generator, source: Tensor, frames: Tensor) -> Tensor:
        """The harmonic source [B, 600 Fmax] as STFT magnitude and phase: [B, n_fft + 2, K]."""
        samples = frames * SAMPLES_PER_FRAME
        stft_frames = samples // gen.stft.hop_length + 1
        spec, phase = self._stft(gen, source, samples)
        return torch.cat([spec, phase], dim=1) * _lengths_mask(stft_frames, spec.shape[-1])

    def _decoder_core(
        self,
        dec: Decoder,
        asr: Tensor,
        f0_curve: Tensor,
        noise_curve: Tensor,
        s: Tensor,
        frames: Tensor,
        har: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Decoder blocks + generator upsampling -> (magnitude, phase, STFT frames per item)."""
        mask = _lengths_mask(frames, asr.shape[-1])
        f0 = dec.F0_conv(f0_curve.unsqueeze(1)) * mask
        n = dec.N_conv(noise_curve.unsqueeze(1)) * mask
        x = torch.cat([asr, f0, n], dim=1)
        x, x_mask = self._adain_resblk(dec.encode, x, s, mask)
        asr_res = dec.asr_res(asr) * mask
        res = True
        for block in dec.decode:
            if res:
                x = torch.cat([x, asr_res, f0, n], dim=1)
            x, x_mask = self._adain_resblk(block, x, s, x_mask)
            if block.upsample_type != "none":
                res = False
        return self._generator(dec.generator, x, s, frames, har)

    def _generator(
        self, gen: Generator, x: Tensor, s: Tensor, frames: Tensor, har: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """iSTFTNet generator's upsampling stack: x [B, C, 2Fmax] -> magnitude, phase, frames."""
        rate = 2 * frames  # generator input frames
        for i in range(gen.num_upsamples):
            x = F.leaky_relu(x, negative_slope=0.1)
            rate = rate * gen.ups[i].stride[0]
            last = i == gen.num_upsamples - 1
            if last:
                rate = rate + 1  # the reflection pad below adds one frame at the start
            x_source = gen.noise_convs[i](har.to(x.dtype))
            mask = _lengths_mask(rate, x_source.shape[-1])
            x_source = self._adain_resblock1(gen.noise_res[i], self._time_major(x_source * mask), s, mask)
            x = gen.ups[i](x)
            if last:
                x = gen.reflection_pad(x)
            x = self._time_major(self.fused.masked_add(x_source, x, mask))
            del x_source  # not needed by the resblocks below
            # The resblocks' mean, summed in place: one of their outputs alive at a time besides the sum.
            blocks = gen.resblocks[i * gen.num_kernels : (i + 1) * gen.num_kernels]
            total = self._adain_resblock1(blocks[0], x, s, mask)  # a new tensor: the block has layers
            for block in blocks[1:]:
                total += self._adain_resblock1(block, x, s, mask)
            x = total.div_(gen.num_kernels)
        with torch.autocast(x.device.type, enabled=False):  # phase is sensitive: full precision
            x = gen.conv_post(F.leaky_relu(_full_precision(x)))
        n_bins = gen.post_n_fft // 2 + 1
        spec = torch.exp(x[:, :n_bins, :]) * mask
        phase = torch.sin(x[:, n_bins:, :])
        return spec, phase, rate

    @staticmethod
    def _source(gen: Generator, f0: Tensor, samples: Tensor, seeds: Tensor) -> Tensor:
        """``SourceModuleHnNSF`` (harmonic branch) with per-item noise and per-item edges."""
        source = gen.m_source
        sine = source.l_sin_gen
        batch, length, _ = f0.shape
        device = f0.device
        harmonics = torch.arange(1, sine.harmonic_num + 2, device=device, dtype=f0.dtype)
        rad = (f0 * harmonics / sine.sampling_rate) % 1  # [B, N, H]

        # Noise drawn per item, in Kokoro's order and shapes, from the request's seed.
        dtype = f0.dtype
        rand_ini = torch.zeros(batch, sine.dim, device=device, dtype=dtype)
        noise = torch.zeros(batch, length, sine.dim, device=device, dtype=dtype)
        for b in range(batch):
            n = int(samples[b])
            g = torch.Generator(device=device).manual_seed(int(seeds[b]))
            rand_ini[b] = torch.rand(1, sine.dim, generator=g, device=device, dtype=dtype)[0]
            # Kokoro's randn_like fills a tensor laid out as [B, H, N] viewed as [B, N, H];
            # CPU normal_ draws differently for such a tensor than for a contiguous one.
            item_noise = torch.empty_strided(
                (1, n, sine.dim), (n * sine.dim, 1, n), device=device, dtype=dtype
            )
            noise[b, :n] = item_noise.normal_(generator=g)[0]
        rand_ini[:, 0] = 0
        rad[:, 0, :] = rad[:, 0, :] + rand_ini

        scale = sine.upsample_scale
        rad = F.interpolate(rad.transpose(1, 2), scale_factor=1 / scale, mode="linear")
        phase = torch.cumsum(rad, dim=2) * 2 * torch.pi * scale  # [B, H, N / scale]
        up = F.interpolate(phase, scale_factor=scale, mode="linear")
        # Batch-1 clamps at its own last point; past it, hold that item's last value.
        points = samples // scale  # per-item length of the downsampled phase
        last = phase.gather(2, (points - 1).view(batch, 1, 1).expand(-1, phase.shape[1], 1))
        t = torch.arange(length, device=device)
        beyond = t[None, :] >= (points * scale - scale // 2)[:, None]
        up = torch.where(beyond[:, None, :], last, up).transpose(1, 2)

        uv = (f0 > sine.voiced_threshold).float()
        noise_amp = uv * sine.noise_std + (1 - uv) * sine.sine_amp / 3
        waves = torch.sin(up) * sine.sine_amp * uv + noise_amp * noise
        # The harmonics' mix, item by item: one matrix product over the whole batch rounds differently
        # from an item's own. The first frame of the source's STFT is real in exact arithmetic (its
        # window is symmetric about a reflection point), so rounding alone picks +pi or -pi as the
        # phase of its negative bins, and the generator turns that 2 pi step into audible differences.
        mixed = torch.cat([source.l_linear(waves[b : b + 1]) for b in range(batch)])
        har = source.l_tanh(mixed).squeeze(-1)
        return har * _lengths_mask(samples, length).squeeze(1)

    @staticmethod
    def _stft(gen: Generator, x: Tensor, samples: Tensor) -> tuple[Tensor, Tensor]:
        """``torch.stft(center=True)`` with reflect padding at each item's own end."""
        n_fft, hop = gen.stft.filter_length, gen.stft.hop_length
        pad = n_fft // 2
        batch = x.shape[0]
        left = x[:, 1 : pad + 1].flip(-1)
        padded = torch.cat([left, x, x.new_zeros(batch, pad)], dim=-1)
        k = torch.arange(pad, device=x.device)
        src = samples[:, None] - 2 - k[None, :]  # reflect: x[n-2], x[n-3], ...
        padded.scatter_(1, pad + samples[:, None] + k[None, :], x.gather(1, src))
        window = gen.stft.window.to(x.device, x.dtype)
        spec = torch.stft(
            padded, n_fft, hop, gen.stft.win_length, window=window, center=False, return_complex=True
        )
        return spec.abs(), spec.angle()

    @staticmethod
    def _istft(gen: Generator, spec: Tensor, phase: Tensor, frames: Tensor) -> Tensor:
        """``torch.istft(center=True)`` where each item's window envelope counts its own frames."""
        n_fft, hop = gen.stft.filter_length, gen.stft.hop_length
        window = gen.stft.window.to(spec.device, spec.dtype)
        n_frames = spec.shape[-1]
        full = (n_frames - 1) * hop + n_fft
        blocks = torch.fft.irfft(spec * torch.exp(phase * 1j), n=n_fft, dim=1) * window[None, :, None]
        y = F.fold(blocks, output_size=(1, full), kernel_size=(1, n_fft), stride=(1, hop))
        frame_mask = _lengths_mask(frames, n_frames).to(spec.dtype)  # [B, 1, K]
        env = F.fold(
            (window**2)[None, :, None] * frame_mask,
            output_size=(1, full),
            kernel_size=(1, n_fft),
            stride=(1, hop),
        )
        y, env = y.flatten(1), env.flatten(1)
        pad = n_fft // 2
        y = y[:, pad : pad + (n_frames - 1) * hop]
        env = env[:, pad : pad + (n_frames - 1) * hop]
        return torch.where(env > 1e-11, y / env.clamp(min=1e-11), torch.zeros_like(y))


def similar_length_groups(
    lengths: Sequence[int], max_padding: float = MAX_TEXT_PADDING, max_tokens: int = MAX_GROUPED_TOKENS
) -> list[list[int]]:
    """Indices of ``lengths`` in groups of similar length, shortest first: a group takes the next
    longer item while its padded size (items x longest) stays within ``max_padding`` times the sum
    of its lengths; an item longer than ``max_tokens`` is a group of its own."""
    groups: list[list[int]] = []
    total = 0
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        padded = (len(groups[-1]) + 1) * lengths[i] if groups else 0  # with i as the longest
        if groups and lengths[i] <= max_tokens and padded <= max_padding * (total + lengths[i]):
            groups[-1].append(i)
            total += lengths[i]
        else:
            groups.append([i])
            total = lengths[i]
    return groups


def token_ids(model: KModel, phonemes: str) -> Tensor:
    """Kokoro token ids for ``phonemes`` with the boundary token at both ends."""
    return torch.tensor([0, *(model.vocab[p] for p in phonemes), 0], dtype=torch.long)


def fold_weight_norm(model: nn.Module) -> None:
    """Replace weight-normed layers' (g, v) by the plain weight: same outputs, less work."""
    for module in model.modules():
        if hasattr(module, "weight_g") and hasattr(module, "weight_v"):
            nn.utils.remove_weight_norm(module)


def store_decoder_convs_in(model: KModel, dtype: torch.dtype) -> None:
    """Keep the weights of the decoder's convolutions that run under autocast in ``dtype``.

    Autocast casts each of these weights to ``dtype`` on every call anyway, so the audio is the
    same bit for bit; stored once, they take half the memory (about 100 MB for Kokoro-82M) and no
    per-call copy. ``generator.conv_post`` (phase) and the AdaIN style layers (``nn.Linear``) run
    in full precision and keep float32. Call after :func:`fold_weight_norm`.
    """
    decoder = model.decoder
    for module in decoder.modules():
        if isinstance(module, nn.Conv1d | nn.ConvTranspose1d) and module is not decoder.generator.conv_post:
            module.to(dtype)


__all__ = [
    "SAMPLES_PER_FRAME",
    "BatchItem",
    "BatchOutput",
    "BatchedKokoro",
    "Encoded",
    "TokenSide",
    "fold_weight_norm",
    "similar_length_groups",
    "store_decoder_convs_in",
    "token_ids",
]

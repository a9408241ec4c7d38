"""A straightforward Python peer of `atelier process` for the benchmarks.

Does the same job the way a Python service would: Pillow + numpy for pixels, a
thread pool for the variations and upscales, the ffmpeg CLI (raw frames piped in)
for the slideshow, openpyxl for the report. Same sizes and settings as
config/default.toml: 960x1280 variations on white / a plain colour / a gradient
studio backdrop, Lanczos x2 + unsharp mask, q90 JPEGs, a 720x960 30 fps H.264
slideshow (1.5 s per image, 0.4 s crossfades, 4 % zoom, libx264 veryfast crf 23),
an .xlsx with 96 px thumbnails.

Usage: peer.py IMAGE OUT_DIR [--backgrounds N] [--factor 2] [--images-only]
Prints one JSON line of stage times (seconds) on stdout.
"""
import argparse
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageFilter, ImageOps
from openpyxl import Workbook
from openpyxl.drawing.image import Image as XlImage

CANVAS = (960, 1280)
VIDEO = (720, 960)
FPS, SECONDS, FADE, ZOOM = 30, 1.5, 0.4, 0.04


def analyse(path):
    img = Image.open(path).convert("RGB")
    small = np.asarray(ImageOps.contain(img, (512, 512)), dtype=np.float32)
    border = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]])
    backdrop = np.median(border, axis=0)
    distance = np.sqrt(((small - backdrop) ** 2).sum(axis=2))
    mask = Image.fromarray((distance > 30).astype(np.uint8) * 255)
    mask = mask.filter(ImageFilter.MaxFilter(5)).filter(ImageFilter.MinFilter(5))
    palette = Image.fromarray(small.astype(np.uint8)).quantize(8).getpalette()[:24]
    return img, mask.resize(img.size, Image.BILINEAR), {"backdrop": backdrop.tolist(), "palette": palette}


def backdrop(kind, palette):
    w, h = CANVAS
    if kind == 0:
        return np.full((h, w, 3), 255, np.float32)
    if kind == 1:
        colour = np.array(palette[:3], np.float32) * 0.25 + 191
        return np.broadcast_to(colour, (h, w, 3)).astype(np.float32)
    ramp = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    return (245 - 60 * ramp) * np.ones((h, w, 3), np.float32)


def generate(img, mask, analysis, kind, out):
    w, h = CANVAS
    box = mask.getbbox() or (0, 0, img.width, img.height)
    garment, cut = img.crop(box), mask.crop(box).filter(ImageFilter.GaussianBlur(1.5))
    fit = ImageOps.contain(garment, (int(w * 0.84), int(h * 0.84)), Image.LANCZOS)
    cut = cut.resize(fit.size, Image.BILINEAR)
    x, y = (w - fit.width) // 2, (h - fit.height) // 2
    canvas = backdrop(kind, analysis["palette"])
    shadow = Image.new("L", CANVAS, 0)
    shadow.paste(cut, (x + 12, y + 18))
    shade = np.asarray(shadow.filter(ImageFilter.GaussianBlur(18)), np.float32)[..., None] / 255 * 0.28
    canvas = canvas * (1 - shade)
    alpha = np.zeros((h, w, 1), np.float32)
    alpha[y : y + fit.height, x : x + fit.width, 0] = np.asarray(cut, np.float32) / 255
    layer = np.zeros((h, w, 3), np.float32)
    layer[y : y + fit.height, x : x + fit.width] = np.asarray(fit, np.float32)
    result = Image.fromarray((canvas * (1 - alpha) + layer * alpha).astype(np.uint8))
    result.save(out, quality=90)
    return result


def upscale(img, factor, out):
    big = img.resize((img.width * factor, img.height * factor), Image.LANCZOS)
    big = big.filter(ImageFilter.UnsharpMask(radius=1, percent=35, threshold=0))
    big.save(out, quality=90)
    return big.size


def video(images, out):
    w, h = VIDEO
    margin = 1 + ZOOM * 1.2
    cw, ch = int(w * margin) // 2 * 2, int(h * margin) // 2 * 2
    canvases = []
    for img in images:
        c = Image.new("RGB", (cw, ch), (255, 255, 255))
        fit = ImageOps.contain(img, (cw, ch), Image.LANCZOS)
        c.paste(fit, ((cw - fit.width) // 2, (ch - fit.height) // 2))
        canvases.append(c)
    slot, fade = round(SECONDS * FPS), round(FADE * FPS)

    def frame(i, age):
        s = 1 + ZOOM * age / slot
        bw, bh = cw / s, ch / s
        l, t = (cw - bw) / 2, (ch - bh) / 2
        return np.asarray(canvases[i].resize((w, h), Image.BILINEAR, box=(l, t, l + bw, t + bh)), np.float32)

    cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
           "-pix_fmt", "yuv420p", "-movflags", "+faststart", out]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    for f in range(slot * len(images)):
        i, age = divmod(f, slot)
        pixels = frame(i, age + (fade // 2 if i else 0))
        if i + 1 < len(images) and age >= slot - fade // 2:
            step = age - (slot - fade // 2) + 1
            weight = step / (fade + 1)
            pixels = pixels * (1 - weight) + frame(i + 1, step) * weight
        proc.stdin.write(pixels.astype(np.uint8).tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("ffmpeg failed")


def report(rows, out):
    book = Workbook()
    sheet = book.active
    sheet.append(["kind", "index", "file", "width", "height", "thumbnail"])
    for n, (kind, file, size, img) in enumerate(rows, start=2):
        sheet.append([kind, n - 2, file, size[0], size[1]])
        thumb = ImageOps.contain(img, (10_000, 96))
        path = f"{out}.thumb{n}.png"
        thumb.save(path)
        sheet.add_image(XlImage(path), f"F{n}")
        sheet.row_dimensions[n].height = 75
    book.save(out)
    for n in range(2, len(rows) + 2):
        os.remove(f"{out}.thumb{n}.png")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("image")
    parser.add_argument("out")
    parser.add_argument("--backgrounds", type=int, default=3)
    parser.add_argument("--factor", type=int, default=2)
    parser.add_argument("--images-only", action="store_true")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    times, start = {}, time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        t = time.perf_counter()
        img, mask, analysis = analyse(args.image)
        times["analysis"] = time.perf_counter() - t
        t = time.perf_counter()
        names = [os.path.join(args.out, f"variation_{k}.jpg") for k in range(args.backgrounds)]
        variations = list(pool.map(lambda k: generate(img, mask, analysis, k % 3, names[k]), range(args.backgrounds)))
        times["generation"] = time.perf_counter() - t
        t = time.perf_counter()
        big = [os.path.join(args.out, f"upscaled_{k}.jpg") for k in range(args.backgrounds)]
        sizes = list(pool.map(lambda k: upscale(variations[k], args.factor, big[k]), range(args.backgrounds)))
        times["upscaling"] = time.perf_counter() - t
        if not args.images_only:
            t = time.perf_counter()
            rows = [("variation", n, v.size, v) for n, v in zip(names, variations)]
            rows += [("upscaled", n, s, v) for n, s, v in zip(big, sizes, variations)]
            jobs = [pool.submit(video, variations, os.path.join(args.out, "video.mp4")),
                    pool.submit(report, rows, os.path.join(args.out, "report.xlsx"))]
            for job in jobs:
                job.result()
            times["post_processing"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - start
    print(json.dumps(times))


if __name__ == "__main__":
    main()

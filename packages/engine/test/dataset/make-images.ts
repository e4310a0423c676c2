import sharp, { type Sharp } from "sharp";
import { prng } from "../../../../scripts/lib/prng.mjs";

export { prng };


/** Photo-like raw RGB: a gradient in a random direction, a few solid shapes and noise. */
export function photoLikeRaw(width: number, height: number, seed: number): Buffer {
  const rand = prng(seed);
  const data = Buffer.alloc(width * height * 3);
  const angle = rand() * Math.PI * 2;
  const [dx, dy] = [Math.cos(angle), Math.sin(angle)];
  const base = [rand() * 255, rand() * 255, rand() * 255];
  const shapes = Array.from({ length: 6 }, () => ({
    cx: rand() * width,
    cy: rand() * height,
    r: (0.08 + rand() * 0.25) * Math.min(width, height),
    colour: [rand() * 255, rand() * 255, rand() * 255],
    square: rand() < 0.5,
  }));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const g = ((x / width) * dx + (y / height) * dy) * 120;
      let c = [base[0]! + g, base[1]! - g / 2, base[2]! + g / 3];
      for (const s of shapes) {
        const inside = s.square ? Math.abs(x - s.cx) < s.r && Math.abs(y - s.cy) < s.r : (x - s.cx) ** 2 + (y - s.cy) ** 2 < s.r ** 2;
        if (inside) c = s.colour;
      }
      const i = (y * width + x) * 3;
      for (let k = 0; k < 3; k++) data[i + k] = Math.max(0, Math.min(255, c[k]! + (rand() - 0.5) * 40));
    }
  }
  return data;
}

export function photoLike(width: number, height: number, seed: number): Sharp {
  return sharp(photoLikeRaw(width, height, seed), { raw: { width, height, channels: 3 } });
}

/** A PNG whose header claims `width` x `height` with no pixel data behind it (a decompression bomb's header). */
export function pngHeaderOnly(width: number, height: number): Buffer {
  const chunk = (type: string, body: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    const typed = Buffer.concat([Buffer.from(type, "ascii"), body]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(typed));
    return Buffer.concat([len, typed, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr), chunk("IDAT", Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])), chunk("IEND", Buffer.alloc(0))]);
}

function crc32(bytes: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

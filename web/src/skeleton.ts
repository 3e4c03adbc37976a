// The pose overlay: AP-10K's 17 keypoints (mmpose `ap10k.py` order, the order the API sends)
// joined by its 17 limbs, drawn over a box when the stream runs a pose model.

/** `[x, y, score]` in source pixels, as `keypoints` in the overlay and `detection:update`. */
export type Keypoint = [number, number, number];

/** AP-10K keypoint names by index. */
export const AP10K_KEYPOINTS = [
  "left_eye", "right_eye", "nose", "neck", "root_of_tail",
  "left_shoulder", "left_elbow", "left_front_paw",
  "right_shoulder", "right_elbow", "right_front_paw",
  "left_hip", "left_knee", "left_back_paw",
  "right_hip", "right_knee", "right_back_paw",
] as const;

/** AP-10K's skeleton (mmpose `ap10k.py` `skeleton_info`): pairs of keypoint indices. */
export const AP10K_LIMBS: [number, number][] = [
  [0, 1], [0, 2], [1, 2], [2, 3], [3, 4],
  [3, 5], [5, 6], [6, 7],
  [3, 8], [8, 9], [9, 10],
  [4, 11], [11, 12], [12, 13],
  [4, 14], [14, 15], [15, 16],
];

/** Keypoints scored below this are not drawn (mmpose's default `kpt_thr`). */
export const MIN_SCORE = 0.3;

/**
 * Draws the limbs whose two ends are confident, then the confident keypoints; `at` maps source
 * pixels to canvas pixels. Returns how many keypoints were drawn.
 */
export function drawSkeleton(
  ctx: CanvasRenderingContext2D,
  keypoints: Keypoint[] | undefined,
  at: (x: number, y: number) => [number, number],
  colour: string,
): number {
  if (!keypoints || keypoints.length === 0) return 0;
  const seen = (i: number) => i < keypoints.length && keypoints[i][2] >= MIN_SCORE;
  ctx.save();
  ctx.strokeStyle = colour;
  ctx.lineWidth = 2;
  ctx.beginPath();
  for (const [a, b] of AP10K_LIMBS) {
    if (!seen(a) || !seen(b)) continue;
    ctx.moveTo(...at(keypoints[a][0], keypoints[a][1]));
    ctx.lineTo(...at(keypoints[b][0], keypoints[b][1]));
  }
  ctx.stroke();
  let drawn = 0;
  ctx.fillStyle = "#fff";
  for (let i = 0; i < keypoints.length; i++) {
    if (!seen(i)) continue;
    const [x, y] = at(keypoints[i][0], keypoints[i][1]);
    ctx.beginPath();
    ctx.arc(x, y, 3, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
    drawn++;
  }
  ctx.restore();
  return drawn;
}

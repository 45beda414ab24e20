// A worker in the shape of an AWS Lambda Node.js handler: it takes a job describing an
// image and answers with the thumbnails it would make. (The sizes are computed; no
// image library is involved, so the example runs anywhere Node does.)

const { createHash } = require("node:crypto");

const SIZES = [64, 128, 256];

exports.handler = async (event, context) => {
  if (!event || typeof event.key !== "string") {
    throw new TypeError("the job needs a `key` naming the image");
  }
  const { key, width = 1024, height = 768 } = event;
  console.log(`making thumbnails of ${key} (${width}x${height})`);
  const thumbnails = SIZES.map((size) => {
    const scale = size / Math.max(width, height);
    return {
      key: `thumbnails/${size}/${key}`,
      width: Math.round(width * scale),
      height: Math.round(height * scale),
      etag: createHash("sha256").update(`${key}:${size}`).digest("hex").slice(0, 16),
    };
  });
  return {
    source: key,
    thumbnails,
    requestId: context.awsRequestId,
    remainingMs: context.getRemainingTimeInMillis(),
  };
};

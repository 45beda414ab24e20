// Conformance fixture: a plain CommonJS Lambda handler run by AWS's own Node.js runtime
// interface client (aws-lambda-ric, installed into node_modules/ by ../setup.sh) as a
// `provided` runtime.
exports.handler = async (event, context) => {
  if (event && event.fail) {
    throw new Error(String(event.fail));
  }
  return {
    client: "aws-lambda-ric",
    // The client defines this global before loading the handler.
    streamify: typeof globalThis.awslambda?.streamifyResponse,
    requestId: context.awsRequestId,
    functionName: context.functionName,
    event,
    remainingMs: context.getRemainingTimeInMillis(),
  };
};

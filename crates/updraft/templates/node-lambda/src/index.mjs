// An AWS Lambda handler: HTTP requests arrive as API Gateway (HTTP API) events.
export const handler = async (event, context) => {
  const name = event.queryStringParameters?.name ?? "world";
  return {
    statusCode: 200,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ message: `Hello, ${name}!`, function: context.functionName }),
  };
};

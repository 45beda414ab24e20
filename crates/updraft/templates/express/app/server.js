// An Express app, unchanged from how it would run anywhere else.
const express = require("express");

const app = express();
app.use(express.json());

app.get("/{{name}}", (req, res) => {
  res.json({ message: `Hello, ${req.query.name ?? "world"}!`, framework: "express" });
});

// Events (topics, queues, schedules, direct invocations) arrive as CloudEvents.
app.post("/", (req, res) => res.json({ received: req.get("ce-type") }));

app.listen(Number(process.env.PORT ?? 8000), "127.0.0.1");

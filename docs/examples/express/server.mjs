// The API of the guide's Express example, run by crates/server/tests/api/guide.rs.
import express from "express";
import { tollgate } from "./tollgate.mjs";

const app = express();
app.get("/health", (req, res) => res.send("ok"));
app.get("/api/orders", tollgate(process.env.TOLLGATE_URL), (req, res) => {
  if (!req.user.roles.includes("admin")) {
    return res.status(403).json({ message: "Require Admin Role!" });
  }
  res.json({ orders: [], for: req.user.preferred_username });
});
app.listen(Number(process.env.PORT), "127.0.0.1");

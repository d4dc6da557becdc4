/**
 * What a subscription to the global log delivers: each event in log order,
 * and, whenever everything readable so far has been delivered, `CaughtUp`
 * with the position reached (at least once after catching up, and again after
 * each later burst of events), so that a consumer can tell "nothing more for
 * now" from "more is coming".
 */
import { Data } from "effect"
import type { RecordedEvent } from "./Event.js"
import type { LogPosition } from "./LogPosition.js"

export type LogMessage = Data.TaggedEnum<{
  Event: { readonly event: RecordedEvent }
  CaughtUp: { readonly position: LogPosition }
}>

export const { Event, CaughtUp, $is: is, $match: match } = Data.taggedEnum<LogMessage>()

/**
 * A position in the global log: where an event stands in the one order all
 * readers share, and where a reader resumes. Two positions compare as strings
 * exactly as the log orders them, so a checkpoint can be kept in any text
 * column and compared anywhere (`a < b`).
 *
 * The form is `TTTTTTTTTTTTTTTTTTTT-PPPPPPPPPPPPPPPPPPP`: the writing
 * transaction (20 digits, PostgreSQL's 64-bit transaction id; the commit
 * number in the in-memory store) and the event's global position (19 digits),
 * both zero-padded. The log is ordered by transaction, then position: see
 * docs/global-log.md for why the position alone would let readers skip events.
 */
import { type Brand, Either, ParseResult, Schema } from "effect"
import { InvalidLogPosition } from "./errors.js"

export type LogPosition = string & Brand.Brand<"LogPosition">

const transactionDigits = 20
const positionDigits = 19
const form = /^\d{20}-\d{19}$/
const maxTransaction = 2n ** 64n - 1n
const maxPosition = 2n ** 63n - 1n

/** Before every event: a reader from `start` reads the whole log. */
export const start = "0".repeat(transactionDigits).concat("-", "0".repeat(positionDigits)) as LogPosition

/** The position of an event written by `transaction` at `position`, or of a point between events. */
export const make = (transaction: bigint, position: bigint): LogPosition => {
  if (transaction < 0n || transaction > maxTransaction || position < 0n || position > maxPosition) {
    throw new RangeError(`a log position is a transaction in 0..2^64-1 and a position in 0..2^63-1`)
  }
  return `${transaction.toString().padStart(transactionDigits, "0")}-${position
    .toString()
    .padStart(positionDigits, "0")}` as LogPosition
}

/**
 * Past every event of transactions up to `transaction`: where a reader stands
 * once every transaction before the next one has ended and been read.
 */
export const afterTransaction = (transaction: bigint): LogPosition => make(transaction, maxPosition)

/** The transaction and position a `LogPosition` stands for. */
export const parts = (self: LogPosition): { readonly transaction: bigint; readonly position: bigint } => ({
  transaction: BigInt(self.slice(0, transactionDigits)),
  position: BigInt(self.slice(transactionDigits + 1))
})

/** Validates `input` as a `LogPosition`. */
export const validate = (input: string): Either.Either<LogPosition, InvalidLogPosition> => {
  if (typeof input !== "string" || !form.test(input))
    return Either.left(new InvalidLogPosition({ input: String(input) }))
  const { transaction, position } = parts(input as LogPosition)
  return transaction <= maxTransaction && position <= maxPosition
    ? Either.right(input as LogPosition)
    : Either.left(new InvalidLogPosition({ input }))
}

/** Validates `input`, throwing `InvalidLogPosition` when it is not a log position. */
export const unsafeMake = (input: string): LogPosition => Either.getOrThrowWith(validate(input), (error) => error)

/** The later of two positions. */
export const max = (a: LogPosition, b: LogPosition): LogPosition => (a < b ? b : a)

/** A schema from `string` to `LogPosition`, for positions read back from storage. */
export const schema: Schema.Schema<LogPosition, string> = Schema.transformOrFail(
  Schema.String,
  Schema.String.pipe(Schema.brand("LogPosition")),
  {
    strict: true,
    decode: (input, _, ast) =>
      Either.mapLeft(validate(input), (error) => new ParseResult.Type(ast, input, error.message)),
    encode: (position) => ParseResult.succeed(position)
  }
).annotations({ identifier: "LogPosition" })

/**
 * Command-line parsing for the `eventcore` command, on Node's own `parseArgs`:
 * commands with options, positional arguments and subcommands, help text, and
 * one-line errors for what a user typed wrong. It knows nothing of what the
 * commands do.
 */
import { parseArgs } from "node:util"

export interface TextOption {
  readonly type: "text"
  /** What the value is, in the help: `--data-dir DIR`. */
  readonly placeholder: string
  readonly description: string
}

/** A text option that may be given more than once: `--type A --type B`. */
export interface TextListOption {
  readonly type: "texts"
  readonly placeholder: string
  readonly description: string
}

export interface IntegerOption<Default extends number | undefined = number | undefined> {
  readonly type: "integer"
  readonly placeholder: string
  readonly description: string
  /** Used when the option is absent, and shown in the help. */
  readonly default: Default
  /** The smallest value accepted; a smaller one is an argument error. */
  readonly min: number | undefined
}

export interface FlagOption {
  readonly type: "flag"
  readonly description: string
}

export type OptionSpec = TextOption | TextListOption | IntegerOption | FlagOption

export const text = (placeholder: string, description: string): TextOption => ({
  type: "text",
  placeholder,
  description
})

/** Repeatable: the command receives every value, in the order given (none: an empty list). */
export const texts = (placeholder: string, description: string): TextListOption => ({
  type: "texts",
  placeholder,
  description
})

/** `placeholder` names what the number is, in the help (`--before VERSION`); a count is `N`. */
export const integer = <const Default extends number | undefined = undefined>(
  description: string,
  options: { readonly default?: Default; readonly min?: number; readonly placeholder?: string } = {}
): IntegerOption<Default> => ({
  type: "integer",
  placeholder: options.placeholder ?? "N",
  description,
  default: options.default as Default,
  min: options.min
})

export const flag = (description: string): FlagOption => ({ type: "flag", description })

/**
 * What a command receives for an option: absent text is `undefined`, absent
 * integers take their default, a repeatable option is the list of its values.
 */
export type ValueOf<O extends OptionSpec> = O extends FlagOption
  ? boolean
  : O extends IntegerOption<infer Default>
    ? Default extends number
      ? number
      : number | undefined
    : O extends TextListOption
      ? ReadonlyArray<string>
      : string | undefined

export interface ArgumentSpec<Name extends string = string> {
  readonly name: Name
  readonly description: string
}

export interface CommandSpec<
  Options extends Record<string, OptionSpec> = Record<string, OptionSpec>,
  Args extends string = string
> {
  readonly name: string
  /** One line, in the command list and at the top of the command's help. */
  readonly summary: string
  /** Required positional arguments, in order. */
  readonly args?: ReadonlyArray<ArgumentSpec<Args>>
  /** By option name, without the dashes. */
  readonly options: Options
}

export interface Input<Options extends Record<string, OptionSpec>, Args extends string> {
  readonly options: { readonly [K in keyof Options]: ValueOf<Options[K]> }
  readonly args: { readonly [K in Args]: string }
}

/**
 * A command whose arguments are parsed before it runs; `R` is what running it
 * means (here an Effect). `run` may throw an {@link ArgumentError} for what the
 * parser cannot know is wrong (two options that exclude each other, a value of
 * the wrong form), so that it is reported as any argument error is.
 */
export interface Command<R> {
  readonly spec: CommandSpec
  /**
   * Parses the arguments after the command's name and checks what can be
   * checked before running it; throws an {@link ArgumentError}.
   */
  readonly prepare: (argv: ReadonlyArray<string>) => R
  /**
   * Commands run as `<this command> <name>` (`snapshots clear`), each with
   * its options and help: a word right after the command's name that names
   * one runs it.
   */
  readonly subcommands?: ReadonlyArray<Command<R>>
}

export const command = <const Options extends Record<string, OptionSpec>, R, const Args extends string = never>(
  spec: CommandSpec<Options, Args>,
  run: (input: Input<Options, Args>) => R
): Command<R> => ({ spec, prepare: (argv) => run(parseCommand(spec, argv)) })

/** `parent`, with `subcommands` run as `<parent> <subcommand>`. */
export const withSubcommands = <R>(parent: Command<R>, subcommands: ReadonlyArray<Command<R>>): Command<R> => ({
  ...parent,
  subcommands
})

export interface Program<R> {
  readonly name: string
  readonly summary: string
  readonly commands: ReadonlyArray<Command<R>>
  /** Printed under the command list. */
  readonly notes?: ReadonlyArray<string>
  /** Read only when asked for. */
  readonly version: () => string
}

/** What the command line asks for: text to print and an exit code, or a command to run. */
export type CommandLine<R> =
  | { readonly _tag: "Print"; readonly to: "stdout" | "stderr"; readonly text: string; readonly exitCode: 0 | 2 }
  | { readonly _tag: "Run"; readonly command: string; readonly run: R }

/** What is wrong with the arguments. */
export class ArgumentError extends Error {}

/** Fails the parse with an {@link ArgumentError}: for a command's own checks (see {@link command}). */
export const usageError = (message: string): never => {
  throw new ArgumentError(message)
}

const isHelp = (arg: string) => arg === "--help" || arg === "-h"

/**
 * Help goes to stdout with exit code 0; no command at all prints the help on
 * stderr with exit code 2, as does anything wrong with the arguments, in one
 * line that names the command and says whose help to read.
 */
export const parseCommandLine = <R>(program: Program<R>, argv: ReadonlyArray<string>): CommandLine<R> => {
  const print = (to: "stdout" | "stderr", text: string, exitCode: 0 | 2): CommandLine<R> => ({
    _tag: "Print",
    to,
    text,
    exitCode
  })
  let who = program.name
  try {
    const [first, ...rest] = argv
    if (first === undefined) return print("stderr", programHelp(program), 2)
    if (isHelp(first)) return print("stdout", programHelp(program), 0)
    if (first === "--version") return print("stdout", `${program.version()}\n`, 0)
    if (first === "help") {
      const [name, ...extra] = rest
      if (name === undefined || name === "help" || isHelp(name)) {
        if (extra[0] !== undefined) throw new ArgumentError(`unexpected argument ${JSON.stringify(extra[0])}`)
        return print("stdout", programHelp(program), 0)
      }
      const chosen = resolveCommand(findCommand(program, name), name, extra)
      if (chosen.argv[0] !== undefined) throw new ArgumentError(`unexpected argument ${JSON.stringify(chosen.argv[0])}`)
      return print("stdout", helpOf(program.name, chosen), 0)
    }
    if (first.startsWith("-")) {
      const name = first.replace(/^--?|=.*$/g, "")
      const known = program.commands.some((c) => Object.hasOwn(c.spec.options, name))
      throw new ArgumentError(known ? `--${name} goes after the command` : `unknown option ${first}`)
    }
    const found = findCommand(program, first)
    // An unknown subcommand is reported as the command's own error.
    who = `${program.name} ${first}`
    const chosen = resolveCommand(found, first, rest)
    who = `${program.name} ${chosen.name}`
    // --help wins over anything else on the line, up to a "--" (after which it is an argument).
    const options = chosen.argv.includes("--") ? chosen.argv.slice(0, chosen.argv.indexOf("--")) : chosen.argv
    if (options.some(isHelp)) return print("stdout", helpOf(program.name, chosen), 0)
    return { _tag: "Run", command: chosen.name, run: chosen.command.prepare(chosen.argv) }
  } catch (error) {
    if (!(error instanceof ArgumentError)) throw error
    return print("stderr", `${who}: ${error.message} (see ${who} --help)\n`, 2)
  }
}

const findCommand = <R>(program: Program<R>, name: string): Command<R> => {
  const found = program.commands.find((c) => c.spec.name === name)
  if (found !== undefined) return found
  const names = [...program.commands.map((c) => c.spec.name), "help"]
  throw new ArgumentError(`unknown command ${JSON.stringify(name)}${suggestion(name, names)}`)
}

interface Resolved<R> {
  readonly command: Command<R>
  /** As typed: `snapshots clear` for a subcommand. */
  readonly name: string
  /** Under the program's name: `eventcore snapshots` for a subcommand, where its help's usage line starts. */
  readonly parent: string | undefined
  /** The arguments after the command's name. */
  readonly argv: ReadonlyArray<string>
}

/**
 * `command` (named `name`), or its subcommand that the first of `rest` names.
 * A command with subcommands and no positional arguments of its own takes
 * any other word there for a subcommand's name, and refuses it as unknown.
 */
const resolveCommand = <R>(command: Command<R>, name: string, rest: ReadonlyArray<string>): Resolved<R> => {
  const [next, ...after] = rest
  const subcommands = command.subcommands ?? []
  if (next === undefined || subcommands.length === 0) return { command, name, parent: undefined, argv: rest }
  const sub = subcommands.find((c) => c.spec.name === next)
  if (sub !== undefined) return { command: sub, name: `${name} ${next}`, parent: name, argv: after }
  if ((command.spec.args ?? []).length === 0 && !next.startsWith("-")) {
    const names = subcommands.map((c) => c.spec.name)
    throw new ArgumentError(`unknown command ${JSON.stringify(next)}${suggestion(next, names)}`)
  }
  return { command, name, parent: undefined, argv: rest }
}

const helpOf = <R>(programName: string, chosen: Resolved<R>) =>
  commandHelp(
    chosen.parent === undefined ? programName : `${programName} ${chosen.parent}`,
    chosen.command.spec,
    (chosen.command.subcommands ?? []).map((c) => c.spec)
  )

/** Parses one command's arguments (those after its name). */
export const parseCommand = <Options extends Record<string, OptionSpec>, Args extends string>(
  spec: CommandSpec<Options, Args>,
  argv: ReadonlyArray<string>
): Input<Options, Args> => {
  const fail = (message: string): never => {
    throw new ArgumentError(message)
  }
  const { tokens } = parseArgs({
    args: [...argv],
    options: Object.fromEntries(
      Object.entries(spec.options).map(([name, option]) => [
        name,
        { type: option.type === "flag" ? ("boolean" as const) : ("string" as const) }
      ])
    ),
    // Unknown options, missing values and the like are reported below, in the command's own words.
    strict: false,
    allowPositionals: true,
    tokens: true
  })
  const values: Record<string, string | number | boolean | Array<string> | undefined> = {}
  const positionals: Array<string> = []
  for (const token of tokens) {
    if (token.kind === "positional") positionals.push(token.value)
    if (token.kind !== "option") continue
    const option = Object.hasOwn(spec.options, token.name) ? spec.options[token.name] : undefined
    // No command has short options: -h is taken before parsing.
    if (option === undefined || !token.rawName.startsWith("--")) {
      return fail(
        `unknown option ${token.rawName}${suggestion(
          token.rawName,
          Object.keys(spec.options).map((name) => `--${name}`)
        )}`
      )
    }
    if (option.type === "flag") {
      if (token.value !== undefined) return fail(`${token.rawName} takes no value`)
      values[token.name] = true
      continue
    }
    // A separate value that looks like an option is the next option, not this one's value.
    const value =
      token.value === undefined || (!token.inlineValue && /^-[^\d]/.test(token.value)) ? undefined : token.value
    if (value === undefined) return fail(`${token.rawName} needs a value`)
    if (option.type === "texts") {
      values[token.name] = [...((values[token.name] as Array<string> | undefined) ?? []), value]
      continue
    }
    if (values[token.name] !== undefined) return fail(`${token.rawName} is given more than once`)
    if (option.type === "integer") {
      const number = Number(value)
      if (!/^-?\d+$/.test(value) || !Number.isSafeInteger(number))
        return fail(`${token.rawName} expects an integer, got ${JSON.stringify(value)}`)
      if (option.min !== undefined && number < option.min)
        return fail(`${token.rawName} must be at least ${option.min}, got ${number}`)
      values[token.name] = number
    } else {
      values[token.name] = value
    }
  }
  for (const [name, option] of Object.entries(spec.options)) {
    if (values[name] !== undefined) continue
    if (option.type === "flag") values[name] = false
    if (option.type === "integer") values[name] = option.default
    if (option.type === "texts") values[name] = []
  }
  const expected = spec.args ?? []
  const extra = positionals[expected.length]
  if (extra !== undefined) return fail(`unexpected argument ${JSON.stringify(extra)}`)
  const args: Record<string, string> = {}
  for (const [i, arg] of expected.entries()) {
    const value = positionals[i]
    if (value === undefined) return fail(`missing argument <${arg.name}>`)
    args[arg.name] = value
  }
  return { options: values, args } as Input<Options, Args>
}

/** `; did you mean X?` when one name is a typo away, closer than any other (`stat`: `stats`, not `status`). */
const suggestion = (typed: string, names: ReadonlyArray<string>) => {
  const close = names
    .map((name) => ({ name, distance: distance(typed, name) }))
    .filter(({ name, distance }) => distance <= Math.min(2, Math.floor(name.length / 3)))
  const nearest = close.filter(({ distance }) => distance === Math.min(...close.map((c) => c.distance)))
  return nearest.length === 1 ? `; did you mean ${nearest[0]?.name}?` : ""
}

/** Levenshtein distance. */
const distance = (a: string, b: string) => {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1)
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, substitution)
    }
    previous = current
  }
  return previous[b.length] as number
}

/** Two columns: names padded to the widest. */
const table = (rows: ReadonlyArray<readonly [string, string]>) => {
  const width = Math.max(...rows.map(([left]) => left.length))
  return rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`.trimEnd())
}

export const programHelp = <R>(program: Program<R>) =>
  [
    `${program.name}: ${program.summary}`,
    "",
    `Usage: ${program.name} <command> [options]`,
    "",
    "Commands:",
    ...table([
      ...program.commands.flatMap((c) => [
        [c.spec.name, c.spec.summary] as const,
        ...(c.subcommands ?? []).map((sub) => [`${c.spec.name} ${sub.spec.name}`, sub.spec.summary] as const)
      ]),
      ["help", `print this help, or a command's: ${program.name} help <command>`]
    ]),
    "",
    "Options:",
    ...table([
      ["-h, --help", "print this help"],
      ["--version", "print the version"]
    ]),
    ...(program.notes === undefined ? [] : ["", ...program.notes]),
    "",
    `Run '${program.name} <command> --help' for a command's options.`,
    ""
  ].join("\n")

/** `programName` is what comes before the command's name: `eventcore`, or `eventcore snapshots` for its subcommands. */
export const commandHelp = (programName: string, spec: CommandSpec, subcommands: ReadonlyArray<CommandSpec> = []) => {
  const args = spec.args ?? []
  const optionRows = Object.entries(spec.options).map(([name, option]) => {
    const left = option.type === "flag" ? `--${name}` : `--${name} ${option.placeholder}`
    const right =
      option.type === "integer" && option.default !== undefined
        ? `${option.description} (default: ${option.default})`
        : option.type === "texts"
          ? `${option.description} (repeatable: --${name} A --${name} B)`
          : option.description
    return [left, right] as const
  })
  return [
    `Usage: ${[programName, spec.name, ...args.map((arg) => `<${arg.name}>`), "[options]"].join(" ")}`,
    "",
    `${spec.summary.charAt(0).toUpperCase()}${spec.summary.slice(1)}.`,
    ...(args.length === 0
      ? []
      : ["", "Arguments:", ...table(args.map((arg) => [`<${arg.name}>`, arg.description] as const))]),
    "",
    "Options:",
    ...table([...optionRows, ["-h, --help", "print this help"]]),
    ...(subcommands.length === 0
      ? []
      : [
          "",
          "Commands:",
          ...table(subcommands.map((sub) => [sub.name, sub.summary] as const)),
          "",
          `Run '${programName} ${spec.name} <command> --help' for a command's options.`
        ]),
    ""
  ].join("\n")
}

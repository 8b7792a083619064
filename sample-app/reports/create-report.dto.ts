import { IsNotEmpty, IsString, Matches, MaxLength } from 'class-validator';

/** No control characters (NUL, escapes, line breaks): PostgreSQL text cannot even hold NUL. */
const PRINTABLE = /^\P{Cc}*$/u;
const PRINTABLE_MESSAGE = { message: '$property must not contain control characters' };

/** Body of `POST /reports`. */
export class CreateReportDto {
  /** What the report is about. */
  @IsString()
  @IsNotEmpty()
  @MaxLength(200)
  @Matches(PRINTABLE, PRINTABLE_MESSAGE)
  topic!: string;
}

/** Query of `GET /preview`. */
export class PreviewQueryDto {
  @IsString()
  @IsNotEmpty()
  @MaxLength(200)
  @Matches(PRINTABLE, PRINTABLE_MESSAGE)
  topic!: string;
}

import { IsNotEmpty, IsString, MaxLength } from 'class-validator';

/** Body of `POST /reports`. */
export class CreateReportDto {
  /** What the report is about. */
  @IsString()
  @IsNotEmpty()
  @MaxLength(200)
  topic!: string;
}

/** Query of `GET /preview`. */
export class PreviewQueryDto {
  @IsString()
  @IsNotEmpty()
  @MaxLength(200)
  topic!: string;
}

import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { ResilienceSwagger } from 'nest-resilience/swagger';
import { AppModule } from '../app/src/app.module.js';

const app = await NestFactory.create(AppModule);
const config = new DocumentBuilder().setTitle('Payments API').setVersion('1').build();
// ResilienceSwagger.createDocument where you would call SwaggerModule.createDocument (same arguments)
SwaggerModule.setup('docs', app, () => ResilienceSwagger.createDocument(app, config));
await app.listen(process.env.PORT ?? 3000);
